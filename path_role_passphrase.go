package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

func taskMetaKey(taskID string) cacheKey { return cacheKey{kind: kindTask, id: taskID} }

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

func (b *backend) pathRoleCertKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, taskID := d.Get("role").(string), d.Get("task_id").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := validateTaskID(taskID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r, known := b.roles.cached(name)
	in, early, err := b.enterScope(ctx, req, name, taskID, r, known)
	if early != nil || err != nil {
		return early, err
	}
	return b.certKeyResponse(ctx, in.conn, in.epoch, in.v, taskID, d.Get("enable_ca_cert").(bool), in.warnings)
}

func (b *backend) pathRolePassphraseRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, taskID := d.Get("role").(string), d.Get("task_id").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := validateTaskID(taskID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r, known := b.roles.cached(name)
	return b.readRolePassphrase(ctx, req, name, taskID, r, known)
}

// readRolePassphrase serves a validated role and task id: two lookups of
// the one cache (metadata for the scope check, then the passphrase), shared
// with every other role and with the direct path. r and known are what this
// node already knows of the role, if anything.
func (b *backend) readRolePassphrase(ctx context.Context, req *logical.Request, name, taskID string, r *role, known bool) (*logical.Response, error) {
	in, early, err := b.enterScope(ctx, req, name, taskID, r, known)
	if early != nil || err != nil {
		return early, err
	}
	return b.passphraseResponse(ctx, in.conn, in.epoch, in.v, taskID, in.warnings)
}

// inScope is what a read needs once its task is known to be in its role's
// scope.
type inScope struct {
	conn     *connection
	epoch    uint64
	v        view
	warnings []string
}

// enterScope admits a read of a validated role and task id, or answers it:
// early (the engine is not configured) or with an error (no such role, out
// of scope, upstream failure).
func (b *backend) enterScope(ctx context.Context, req *logical.Request, name, taskID string, r *role, known bool) (inScope, *logical.Response, error) {
	epoch := b.cache.currentEpoch()
	conn, err := b.connection(ctx, req.Storage)
	if err != nil {
		return inScope{}, nil, err
	}
	if conn == nil {
		return inScope{}, notConfigured(req), nil
	}
	if !known {
		if r, err = b.roles.get(ctx, req.Storage, name); err != nil {
			return inScope{}, nil, err
		}
	}
	if r == nil {
		return inScope{}, nil, roleMissing(name)
	}
	v := b.cache.view(taskID, conn.policy)
	warnings, err := b.checkScope(ctx, conn, epoch, v, r, name, taskID)
	if err != nil {
		return inScope{}, nil, err
	}
	return inScope{conn: conn, epoch: epoch, v: v, warnings: warnings}, nil, nil
}

func roleMissing(name string) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("role %q does not exist", name))
}

// checkScope returns nil when the task is in the role's scope, and the 403
// otherwise, the same whether the task is out of scope or does not exist.
// The decision is made on every read, against cached metadata; it is never
// cached itself, so that a role change takes effect on the next read.
func (b *backend) checkScope(ctx context.Context, conn *connection, epoch uint64, v view, r *role, name, taskID string) ([]string, error) {
	var warnings []string
	var t *huawei.Task
	if val, ok := v.fresh(kindTask); ok {
		t = val.(*huawei.Task) // the warm path: no fetch, no warning
	} else {
		ans, err := b.cache.fetch(ctx, taskMetaKey(taskID), epoch, conn.policy, func(ctx context.Context) (any, error) {
			if b.fetchHook != nil {
				b.fetchHook()
			}
			t, err := conn.client.Task(ctx, taskID)
			if err != nil {
				b.upstreamFailed("task", taskID, err)
				return nil, err
			}
			return t, nil
		})
		if err != nil {
			var e *huawei.Error
			if errors.As(err, &e) && e.Kind == huawei.KindNotFound {
				return nil, outOfScope(name, taskID)
			}
			return nil, fetchError(ctx, err)
		}
		t = ans.value.(*huawei.Task)
		if w := staleWarning("task metadata", ans); w != "" {
			warnings = []string{w}
		}
	}
	if !r.allows(t) {
		return nil, outOfScope(name, taskID)
	}
	return warnings, nil
}

func outOfScope(name, taskID string) error {
	return logical.CodedError(http.StatusForbidden,
		fmt.Sprintf("task %q is not in the scope of role %q, or does not exist", taskID, name))
}

// rolePassphrasePath splits roles/<role>/passphrase/<task_id>, for the fast
// path; ok is false for anything else.
func rolePassphrasePath(path string) (name, taskID string, ok bool) {
	rest, ok := strings.CutPrefix(path, rolesPrefix)
	if !ok {
		return "", "", false
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return "", "", false
	}
	taskID, ok = strings.CutPrefix(rest[slash+1:], "passphrase/")
	return rest[:slash], taskID, ok
}
