package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

const (
	maxTaskIDLength  = 36
	passphrasePrefix = "passphrase/"
)

func pathPassphrase(b *backend) []*framework.Path {
	return []*framework.Path{{
		// Match anything, so that a malformed task_id reaches validation and
		// gets a 400 naming the field, rather than a bare 404 from the router.
		Pattern:      passphrasePrefix + framework.MatchAllRegex("task_id"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "passphrase"},
		Fields: map[string]*framework.FieldSchema{
			"task_id": {
				Type:        framework.TypeString,
				Required:    true,
				Description: "ID of the SMS migration task: 1 to 36 letters, digits, '-', '_' or '.'.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:    b.pathPassphraseRead,
				Summary:     "Read the certificate passphrase of an SMS task.",
				Description: "Served from the cache when fresh; otherwise fetched from SMS once, however many clients ask at the same time.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"task_id":    {Type: framework.TypeString, Description: "The task asked for."},
						"passphrase": {Type: framework.TypeString, Description: "The task's certificate passphrase.", DisplayAttrs: sensitive("Passphrase")},
					}}},
				},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:    b.pathTaskEvict,
				Summary:     "Evict everything cached of the task (passphrase, metadata, certificate and keys), without calling SMS.",
				Description: "The next read fetches it from SMS again, on this path and every role path. Grant it separately from read in ACL policies.",
				Responses:   map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
		},
		HelpSynopsis: "The certificate passphrase of an SMS migration task.",
		HelpDescription: `
Read returns task_id and passphrase, without a lease: the passphrase is not a
credential Vault can revoke. Vault Agent templates re-read it on their static
secret render interval. Delete evicts the cached entry.`,
	}}
}

// validateTaskID is checked before anything else, upstream calls included.
// "." and ".." pass the character rule but would change the upstream path.
func validateTaskID(id string) error {
	if len(id) == 0 || len(id) > maxTaskIDLength {
		return fmt.Errorf("task_id must be 1 to %d characters", maxTaskIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isNameChar(c) && c != '.' {
			return errors.New("task_id may contain only letters, digits, '-', '_' and '.'")
		}
	}
	if id == "." || id == ".." {
		return errors.New(`task_id must not be "." or ".."`)
	}
	return nil
}

func notConfigured(req *logical.Request) *logical.Response {
	return logical.ErrorResponse(fmt.Sprintf("the engine is not configured: write %sconfig first", req.MountPoint))
}

func (b *backend) pathPassphraseRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	taskID := d.Get("task_id").(string)
	if err := validateTaskID(taskID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return b.readPassphrase(ctx, req, taskID)
}

// passphraseValue is a cached passphrase, its fields boxed once when stored
// so that a cache hit builds its response without allocating them.
type passphraseValue struct {
	taskID     any
	passphrase any
}

func passphraseKey(taskID string, via *agencyRef) cacheKey {
	return cacheKey{kind: kindPassphrase, id: taskID, sp: via.sp()}
}

// readPassphrase serves a validated task id. A warm read is an atomic load, a
// cache lookup and the response: nothing else.
func (b *backend) readPassphrase(ctx context.Context, req *logical.Request, taskID string) (*logical.Response, error) {
	conn, epoch, _, resp, err := b.readConnection(ctx, req)
	if conn == nil {
		return resp, err
	}
	return b.passphraseResponse(ctx, conn, epoch, b.cache.view(taskID, conn.policy), nil, taskID, nil, nil)
}

// passphraseResponse answers with a task's passphrase, from the cache or
// from SMS (spend pays for a fetch, see cache.fetch), adding warnings to any
// the caller collected. via is the agency the read goes through (nil: the
// mount's own credential); v must be a view of via's space.
func (b *backend) passphraseResponse(ctx context.Context, conn *connection, epoch uint64, v view, via *agencyRef, taskID string, spend *budget, warnings []string) (*logical.Response, error) {
	key := passphraseKey(taskID, via)
	if val, ok := v.fresh(kindPassphrase); ok {
		return passphraseAnswer(val.(*passphraseValue), warnings), nil
	}
	ans, err := b.cache.fetch(ctx, key, epoch, conn.policy, spend, func(ctx context.Context) (any, error) {
		if b.fetchHook != nil {
			b.fetchHook()
		}
		var passphrase string
		err := b.withRetryOnRotation(ctx, conn, via, func(c *huawei.Client) (err error) {
			passphrase, err = c.Passphrase(ctx, taskID)
			return err
		})
		if err != nil {
			b.upstreamFailed("passphrase", taskID, err)
			return nil, err
		}
		return &passphraseValue{taskID: taskID, passphrase: passphrase}, nil
	})
	if err != nil {
		return nil, fetchError(ctx, err)
	}
	resp := passphraseAnswer(ans.value.(*passphraseValue), warnings)
	if w := staleWarning("passphrase", ans); w != "" {
		resp.AddWarning(w)
	}
	return resp, nil
}

func passphraseAnswer(pv *passphraseValue, warnings []string) *logical.Response {
	return &logical.Response{Data: map[string]any{"task_id": pv.taskID, "passphrase": pv.passphrase}, Warnings: warnings}
}

// upstreamFailed counts and logs a failed fetch of a task's resource.
func (b *backend) upstreamFailed(what, taskID string, err error) {
	b.stats.errors.Add(1)
	b.logger.Warn("sms "+what+" request failed", "task_id", taskID, "error", err.Error())
}

// fetchError is what a reader sees when a fetch failed.
func fetchError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return logical.CodedError(http.StatusGatewayTimeout, "the request ended before SMS answered")
	}
	var spent *budgetExhausted
	if errors.As(err, &spent) {
		return spent.coded()
	}
	return vaultError(err)
}

// staleWarning says why an expired answer was served, or is empty.
func staleWarning(what string, ans answer) string {
	if ans.staleFor == nil {
		return ""
	}
	return fmt.Sprintf("stale %s served: it was fetched %s ago, past cache_ttl, and stale_if_error allows it because %s",
		what, ans.age.Round(time.Second), ans.staleFor.Error())
}

// pathTaskEvict evicts everything cached of a task (passphrase, metadata,
// certificate and keys): delete on passphrase/<id> and certkey/<id> alike.
func (b *backend) pathTaskEvict(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	taskID := d.Get("task_id").(string)
	if err := validateTaskID(taskID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	b.cache.evictTask(taskID)
	return nil, nil
}
