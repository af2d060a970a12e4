package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

func taskMetaKey(taskID string, via *agencyRef) cacheKey {
	return cacheKey{kind: kindTask, id: taskID, sp: via.sp()}
}

func pathRolePassphrase(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "roles/(?P<role>[^/]+)/passphrase/" + framework.MatchAllRegex("task_id"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "role-passphrase"},
		Fields: map[string]*framework.FieldSchema{
			"role":    {Type: framework.TypeString, Required: true, Description: "Name of the role."},
			"task_id": {Type: framework.TypeString, Required: true, Description: "ID of the SMS migration task."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathRolePassphraseRead,
				Summary:  "Read the certificate passphrase of a task in the role's scope.",
				Description: "The engine learns the task's name and enterprise project from SMS (cached like passphrases) " +
					"and serves the passphrase only when the task is in the role's scope; otherwise 403.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"task_id":    {Type: framework.TypeString, Description: "The task asked for."},
						"passphrase": {Type: framework.TypeString, Description: "The task's certificate passphrase.", DisplayAttrs: sensitive("Passphrase")},
					}}},
				},
			},
		},
		HelpSynopsis: "The passphrase of a task, if the task is in the role's scope.",
		HelpDescription: `
Read returns task_id and passphrase, as sms/passphrase/<task_id> does, when the
task belongs to one of the role's enterprise projects and its name matches one
of the role's globs (those the role sets). A task out of scope and a task that
does not exist get the same 403, so that a team cannot learn which ids exist
outside its scope.`,
	}}
}

func pathRoleCertKey(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "roles/(?P<role>[^/]+)/certkey/" + framework.MatchAllRegex("task_id"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "role-certkey"},
		Fields: map[string]*framework.FieldSchema{
			"role":           {Type: framework.TypeString, Required: true, Description: "Name of the role."},
			"task_id":        {Type: framework.TypeString, Required: true, Description: "ID of the SMS migration task."},
			"enable_ca_cert": enableCAField,
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathRoleCertKeyRead,
				Summary:  "Read the channel certificate and keys of a task in the role's scope.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: certKeyFields()}},
				},
			},
		},
		HelpSynopsis: "The certificate and keys of a task, if the task is in the role's scope.",
		HelpDescription: `
As certkey/<task_id>, under the role's scope check: a task out of scope and a
task that does not exist get the same 403.`,
	}}
}

// roleAndTask returns a role path's validated role name and task id, or the
// 400 that names the bad one.
func roleAndTask(d *framework.FieldData) (name, taskID string, bad *logical.Response) {
	name, taskID = d.Get("role").(string), d.Get("task_id").(string)
	if err := validateRoleName(name); err != nil {
		return "", "", logical.ErrorResponse(err.Error())
	}
	if err := validateTaskID(taskID); err != nil {
		return "", "", logical.ErrorResponse(err.Error())
	}
	return name, taskID, nil
}

func (b *backend) pathRoleCertKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, taskID, bad := roleAndTask(d)
	if bad != nil {
		return bad, nil
	}
	conn, epoch, _, resp, err := b.readConnection(ctx, req)
	if conn == nil {
		return resp, err
	}
	r, err := b.roles.get(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, roleMissing(name)
	}
	enableCA := d.Get("enable_ca_cert").(bool)
	seen := b.cache.evictions.Load()
	return b.judgedByTheStoredRoleAndTask(ctx, req.Storage, name, r, seen, func(r *role) (*logical.Response, error) {
		spend := b.budgetFor(r, name, conn)
		sp := r.agency.sp()
		if err := b.checkScope(ctx, conn, epoch, b.cache.viewIn(sp, taskID, conn.policy), r, name, taskID, spend); err != nil {
			return nil, err
		}
		// A new look: the scope check may have gone upstream, and what it
		// saw may since have expired (a certificate's NotAfter) or been
		// evicted.
		return b.certKeyResponse(ctx, conn, epoch, b.cache.viewIn(sp, taskID, conn.policy), r.agency, taskID, enableCA, spend, nil)
	})
}

func (b *backend) pathRolePassphraseRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, taskID, bad := roleAndTask(d)
	if bad != nil {
		return bad, nil
	}
	r, known := b.roles.cached(name)
	return b.readRolePassphrase(ctx, req, name, taskID, r, known)
}

// readRolePassphrase serves a validated role and task id: two lookups of
// the one cache (metadata for the scope check, then the passphrase), shared
// with every other role and with the direct path. r and known are what this
// node already knows of the role, if anything.
//
// A read answered wholly from the cache, with the connection in place, is
// this function alone: it is the hot path, and it waits for nothing, so the
// role it judged by is the one stored when it answers. A read that waited on
// loading the connection looks the role up again after that wait. Any other read goes upstream, or waits for a fetch
// in flight, and is judged again if the role changed meanwhile.
func (b *backend) readRolePassphrase(ctx context.Context, req *logical.Request, name, taskID string, r *role, known bool) (*logical.Response, error) {
	conn, epoch, waited, resp, err := b.readConnection(ctx, req)
	if conn == nil {
		return resp, err
	}
	if !known || waited {
		// A role looked up before a wait on the connection is looked up
		// again: it may have been changed or deleted meanwhile.
		if r, err = b.roles.get(ctx, req.Storage, name); err != nil {
			return nil, err
		}
	}
	if r == nil {
		return nil, roleMissing(name)
	}
	seen := b.cache.evictions.Load() // before the first look: see judgedByTheStoredRoleAndTask
	// Through an agency, only what that agency fetched: IAM decides every
	// first access of each identity.
	v := b.cache.viewIn(r.agency.sp(), taskID, conn.policy)
	meta := v.freshEntry(kindTask)
	if meta != nil {
		if !admits(r, meta) {
			return nil, outOfScope(name, taskID)
		}
		if val, ok := v.fresh(kindPassphrase); ok {
			return passphraseAnswer(val.(*passphraseValue), nil), nil
		}
	}
	admitted := meta != nil // by r, from the cache: the first attempt needs only the passphrase
	return b.judgedByTheStoredRoleAndTask(ctx, req.Storage, name, r, seen, func(r *role) (*logical.Response, error) {
		spend := b.budgetFor(r, name, conn)
		sp := r.agency.sp()
		if !admitted {
			if err := b.checkScope(ctx, conn, epoch, b.cache.viewIn(sp, taskID, conn.policy), r, name, taskID, spend); err != nil {
				return nil, err
			}
			// The scope check may have gone upstream, which takes time:
			// look again, so that the passphrase is judged now (its TTL,
			// an eviction meanwhile).
			v = b.cache.viewIn(sp, taskID, conn.policy)
		}
		admitted = false
		return b.passphraseResponse(ctx, conn, epoch, v, r.agency, taskID, spend, nil)
	})
}

// judgedByTheStoredRole answers a role read that may wait (an upstream
// call, or one in flight), and so may end after an operator changed or
// deleted the role it was judged by. attempt judges and answers the read by
// a role; once it ends, the role stored under name must still be that one.
// If it was deleted, the answer is the 404 a read starting now would get;
// if it was changed (narrowed, widened, or replaced by one that looks the
// same), the read is judged again by the new one. Each new attempt starts
// from the cache the last one filled, so it goes upstream again only for
// what is no longer cached; there is one more attempt per role change made
// during a read, which only an operator can make.
func (b *backend) judgedByTheStoredRole(ctx context.Context, s logical.Storage, name string, r *role,
	attempt func(*role) (*logical.Response, error)) (*logical.Response, error) {
	for {
		resp, err := attempt(r)
		stored, gerr := b.roles.get(ctx, s, name)
		switch {
		case gerr != nil:
			return nil, gerr
		case stored == r:
			return resp, err
		case stored == nil:
			return nil, roleMissing(name)
		}
		r = stored
	}
}

// judgedByTheStoredRoleAndTask is judgedByTheStoredRole for a read judged
// by cached task metadata as well as by its role. An operator who evicts a
// task (vault delete sms/passphrase/<task_id>, or a flush) takes it out of
// every role's scope at once, reads in flight included: an attempt during
// which any eviction happened is made again, and judged by metadata looked
// up afresh. seen is the cache's eviction count taken before the read's
// first look at the cache. Evictions are operator actions (and config
// changes), so, as with role changes, each costs a read in flight at most
// one more attempt, served from the cache unless its own task was evicted.
func (b *backend) judgedByTheStoredRoleAndTask(ctx context.Context, s logical.Storage, name string, r *role, seen uint64,
	attempt func(*role) (*logical.Response, error)) (*logical.Response, error) {
	return b.judgedByTheStoredRole(ctx, s, name, r, func(r *role) (*logical.Response, error) {
		for {
			resp, err := attempt(r)
			now := b.cache.evictions.Load()
			if now == seen {
				return resp, err
			}
			seen = now
		}
	})
}

func roleMissing(name string) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("role %q does not exist", name))
}

// checkScope returns nil when the task is in the role's scope, and the 403
// otherwise, the same whether the task is out of scope or does not exist.
// The decision is made on every read, against cached metadata; it is never
// cached itself, so that a role change takes effect on the next read.
//
// Metadata for a scope decision is never served stale (stale_if_error): a
// task moved out of a team's scope must drop out within cache_ttl, SMS up or
// not. And a task SMS will not show (not found, or refused for that task) is
// remembered as absent for cache_ttl like metadata, so that a task that does
// not exist costs what one out of scope costs: the same answer, the same
// time, the same upstream calls.
func (b *backend) checkScope(ctx context.Context, conn *connection, epoch uint64, v view, r *role, name, taskID string, spend *budget) error {
	if e := v.freshMeta(taskID); e != nil { // no fetch
		if admits(r, e) {
			return nil
		}
		return outOfScope(name, taskID)
	}
	ans, err := b.cache.fetch(ctx, taskMetaKey(taskID, r.agency), epoch, cachePolicy{ttl: conn.policy.ttl}, spend, func(ctx context.Context) (any, error) {
		if b.fetchHook != nil {
			b.fetchHook()
		}
		var t *huawei.Task
		err := b.withRetryOnRotation(ctx, conn, r.agency, func(c *huawei.Client) (err error) {
			t, err = c.Task(ctx, taskID)
			return err
		})
		if err != nil {
			if unreadableTask(err) {
				b.logger.Warn("sms task metadata refused; the task is out of every role's scope until cache_ttl passes",
					"task_id", taskID, "error", err.Error())
				return absentTask, nil
			}
			b.upstreamFailed("task", taskID, err)
			return nil, err
		}
		return t, nil
	})
	if err != nil {
		return fetchError(ctx, err)
	}
	t := ans.value.(*huawei.Task)
	if t == absentTask || !r.allows(t) {
		return outOfScope(name, taskID)
	}
	return nil
}

// admits reports whether role r allows the task of a fresh metadata entry.
// The decision is a pure function of two immutable values: the role (an
// update publishes a new one, and compiled roles are never changed) and the
// entry's metadata (a fetch makes a new entry). So an entry remembers the
// last role that it admitted, and a repeat read through that role, the
// common case of a team reading its own task, skips the matching: the role
// is still evaluated, by identity, on every read, and a changed role or
// refetched metadata is matched afresh. The reference also keeps that role
// alive, so its address cannot be reused by another.
func admits(r *role, e *entry) bool {
	if e.admitted.Load() == r {
		return true
	}
	t := e.value.(*huawei.Task)
	if t == absentTask || !r.allows(t) {
		return false
	}
	e.admitted.Store(r)
	return true
}

// absentTask stands, in the cache, for a task SMS will not show.
var absentTask = &huawei.Task{}

// unreadableTask reports whether ShowTask's answer says that this task
// cannot be read, as opposed to the upstream failing: a 404, or a 400 or 403
// about the task (SMS's code for a missing task is not documented, and IAM
// policies conditioned on enterprise projects refuse tasks outside them).
func unreadableTask(err error) bool {
	var e *huawei.Error
	if !errors.As(err, &e) || e.Service != "SMS" {
		// IAM's refusals (a login, an agency that cannot be assumed) are
		// about the engine's credentials, not about the task.
		return false
	}
	switch e.Status {
	case http.StatusNotFound, http.StatusBadRequest, http.StatusForbidden:
		return true
	}
	return false
}

func outOfScope(name, taskID string) error {
	return logical.CodedError(http.StatusForbidden,
		fmt.Sprintf("task %q is not in the scope of role %q, or does not exist", taskID, name))
}

// rolePassphrasePath splits roles/<role>/passphrase/<task_id>, for the fast
// path; ok is false for anything else.
func rolePassphrasePath(path string) (name, taskID string, ok bool) {
	const sub = "passphrase/"
	if len(path) < len(rolesPrefix) || path[:len(rolesPrefix)] != rolesPrefix {
		return "", "", false
	}
	rest := path[len(rolesPrefix):]
	// Role names are short: a loop beats IndexByte's setup here.
	slash := 0
	for slash < len(rest) && rest[slash] != '/' {
		slash++
	}
	if len(rest) < slash+1+len(sub) || rest[slash+1:slash+1+len(sub)] != sub {
		return "", "", false
	}
	return rest[:slash], rest[slash+1+len(sub):], true
}
