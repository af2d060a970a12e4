// Package sms is a Vault secrets engine that serves the certificate
// passphrases of Huawei Cloud Server Migration Service (SMS) tasks, keeping the
// SMS credentials inside Vault.
package sms

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const backendHelp = `
The SMS secrets engine reads the certificate passphrase of a Huawei Cloud Server
Migration Service task (GET /v3/tasks/{task_id}/passphrase) with credentials that
stay inside Vault, and caches answers for a configurable time.

Configure it once at "config", then read "passphrase/<task_id>".
`

// Factory is the entry point Vault calls for every mount of the plugin.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(conf.Logger, time.Now)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend owns all mutable state of one mount; with ServeMultiplex one process
// serves every mount, so nothing lives at package level.
type backend struct {
	*framework.Backend

	logger hclog.Logger
	now    func() time.Time
	cache  *passphraseCache
	stats  upstreamStats

	// conn is read lock-free on every request; mu serialises building and
	// dropping it.
	mu   sync.Mutex
	conn atomic.Pointer[connection]
}

// connection is everything derived from one stored config. It is replaced as
// a whole when the config changes, never modified.
type connection struct {
	cfg    *smsConfig
	client *smsClient
	policy cachePolicy
}

func newBackend(logger hclog.Logger, now func() time.Time) *backend {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	b := &backend{logger: logger, now: now}
	b.cache = newPassphraseCache(defaultCacheMaxEntries, now)
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{configStorageKey},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathPassphrase(b),
			pathCache(b),
		),
		Invalidate:     b.invalidate,
		Clean:          func(context.Context) { b.reset() },
		PeriodicFunc:   b.periodic,
		RunningVersion: Version,
	}
	return b
}

// HandleRequest takes two requests away from the framework:
//
//   - A read of passphrase/<valid id> without parameters, the hot path, goes
//     straight to readPassphrase. Profiling showed the framework's routing
//     regexps and its reflection-based field decoding (run twice) costing
//     three times the rest of a cached read; for this one request they decide
//     nothing, and TestFastPathMatchesTheFramework keeps both routes equal.
//   - Config writes are screened first: the framework's field validation
//     quotes a value it cannot convert, so a secret sent with the wrong JSON
//     type would be echoed back into the response and the audit log.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.ReadOperation && len(req.Data) == 0 {
		if id, ok := strings.CutPrefix(req.Path, passphrasePrefix); ok && validateTaskID(id) == nil {
			return b.readPassphrase(ctx, req, id)
		}
	}
	if req.Path == configStorageKey && (req.Operation == logical.CreateOperation || req.Operation == logical.UpdateOperation) {
		for _, name := range secretFields {
			if v, ok := req.Data[name]; ok && v != nil {
				if _, isString := v.(string); !isString {
					return logical.ErrorResponse(fmt.Sprintf("%s must be a string", name)), nil
				}
			}
		}
	}
	return b.Backend.HandleRequest(ctx, req)
}

// connection returns the current connection, building it from storage on
// first use. It returns nil, nil when the engine is not configured.
func (b *backend) connection(ctx context.Context, s logical.Storage) (*connection, error) {
	if c := b.conn.Load(); c != nil {
		return c, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.conn.Load(); c != nil {
		return c, nil
	}
	cfg, err := loadConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	// Built without the request's context: the client outlives this request.
	client, err := newClient(cfg, &b.stats, b.now, b.logger)
	if err != nil {
		return nil, fmt.Errorf("building the SMS client from the stored config: %w", err)
	}
	b.cache.resize(cfg.CacheMaxEntries)
	c := &connection{cfg: cfg, client: client, policy: cachePolicy{ttl: cfg.CacheTTL, staleIfError: cfg.StaleIfError}}
	b.conn.Store(c)
	return c, nil
}

// reset is the one place that drops everything derived from the config: the
// client (and with it any IAM token) and every cached passphrase.
func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.conn.Swap(nil); old != nil {
		old.client.close()
	}
	b.cache.flush()
}

// invalidate runs when another node (a standby, a replication secondary)
// changed a storage key of this mount.
func (b *backend) invalidate(_ context.Context, key string) {
	if key == configStorageKey {
		b.reset()
	}
}

// periodic is called by Vault about once a minute; it frees expired entries.
func (b *backend) periodic(context.Context, *logical.Request) error {
	if c := b.conn.Load(); c != nil {
		b.cache.removeExpired(c.policy)
	}
	return nil
}
