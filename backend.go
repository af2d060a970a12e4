// Package sms is a Vault secrets engine that serves the certificate
// passphrases of Huawei Cloud Server Migration Service (SMS) tasks, keeping the
// SMS credentials inside Vault.
package sms

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
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
	getenv func(string) string // the plugin process's environment (tests replace it)
	cache  *cache
	stats  upstreamStats
	roles  roles

	// fetchHook, when set, runs at the start of every upstream fetch; tests
	// use it to inject what no upstream answer can (a panic).
	fetchHook func()

	// conn is read lock-free on every request; mu serialises building and
	// dropping it. generation is the config generation the cache holds
	// answers of.
	mu         sync.Mutex
	conn       atomic.Pointer[connection]
	generation uint64

	// configMu serialises config writes, deletes and rotations: each stores
	// a config derived from the one it read.
	configMu sync.Mutex
	rotation rotationState
	// keyCheck bounds the check that a new access key works (tests shorten it).
	keyCheck time.Duration
}

// connection is everything derived from one stored config. It is replaced as
// a whole when the config changes, never modified.
type connection struct {
	cfg    *smsConfig
	client *huawei.Client
	policy cachePolicy
	// storage is where cfg was loaded from, for a read that finds its
	// credential refused to look for a rotation another node stored;
	// storageChecked is when one last did (Unix nanoseconds).
	storage        logical.Storage
	storageChecked atomic.Int64
	// epoch is the cache epoch once this connection was in place: answers
	// fetched with it may be stored under it (see readConnection).
	epoch uint64
	// agencies are the clients with agency credentials obtained with client.
	agencies agencyClients
}

// readConnection starts a read: the connection, the epoch its answer is
// stored under, or the response when the engine is not configured. The epoch
// is the one the read took before loading its connection, unless building
// that connection flushed the cache (a config from another node), in which
// case the connection's own. waited reports that the connection was not in
// place, so that the read waited on b.mu and a storage read: what the read
// looked up before (a role) may have changed meanwhile.
func (b *backend) readConnection(ctx context.Context, req *logical.Request) (conn *connection, epoch uint64, waited bool, resp *logical.Response, err error) {
	before := b.cache.currentEpoch()
	if conn = b.conn.Load(); conn != nil {
		return conn, max(before, conn.epoch), false, nil, nil
	}
	if conn, err = b.connection(ctx, req.Storage); err != nil {
		return nil, 0, true, nil, err
	}
	if conn == nil {
		return nil, 0, true, notConfigured(req), nil
	}
	return conn, max(before, conn.epoch), true, nil, nil
}

func newBackend(logger hclog.Logger, now func() time.Time) *backend {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	b := &backend{logger: logger, now: now, getenv: os.Getenv, keyCheck: keyCheckBound}
	b.cache = newCache(defaultCacheMaxEntries, now, logger)
	b.roles.spaceFor, b.roles.changed, b.roles.releaseSpace = b.cache.spaceFor, b.roleChanged, b.cache.releaseSpace
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// The config holds the credentials; a rotation's write-ahead log
			// entry may hold a new password.
			SealWrapStorage: []string{configStorageKey, "wal/"},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathRotateRoot(b),
			pathPassphrase(b),
			pathRoles(b),
			pathRolePassphrase(b),
			pathRoleCertKey(b),
			pathRoleTasks(b),
			pathCertKey(b),
			pathCache(b),
		),
		Invalidate:        b.invalidate,
		Clean:             func(context.Context) { b.reset() },
		PeriodicFunc:      b.periodic,
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		RunningVersion:    Version,
	}
	return b
}

// HandleRequest takes two requests away from the framework:
//
//   - A read of passphrase/<valid id> or roles/<valid role>/passphrase/<valid
//     id> without parameters, the hot paths, go straight to their handlers. Profiling showed the framework's routing
//     regexps and its reflection-based field decoding (run twice) costing
//     three times the rest of a cached read; for this one request they decide
//     nothing, and TestFastPathMatchesTheFramework keeps both routes equal.
//   - A request carrying a field its path cannot convert gets a 400 naming
//     the field: the framework's own message quotes the value, which would
//     echo a secret sent with the wrong JSON type into the response, Vault's
//     log and the audit log (whose error field is not HMACed).
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.ReadOperation && len(req.Data) == 0 {
		if id, ok := strings.CutPrefix(req.Path, passphrasePrefix); ok && validateTaskID(id) == nil {
			return b.readPassphrase(ctx, req, id)
		}
		if name, id, ok := rolePassphrasePath(req.Path); ok && validateTaskID(id) == nil {
			// A role this node knows was validated when it was first looked up.
			if r, known := b.roles.cached(name); known || validateRoleName(name) == nil {
				return b.readRolePassphrase(ctx, req, name, id, r, known)
			}
		}
	}
	if bad := b.unconvertible(req); len(bad) > 0 {
		var problems []string
		for _, f := range bad {
			problems = append(problems, fmt.Sprintf("%s must be a %s", f.name, typeName(f.schema.Type)))
		}
		return logical.ErrorResponse("invalid request: " + strings.Join(problems, "; ")), nil
	}
	return b.Backend.HandleRequest(ctx, req)
}

// HandleExistenceCheck is what Vault calls before a create or update, and the
// framework's version validates every field, quoting a value it cannot
// convert in an error that Vault logs and audits. Unconvertible fields are
// left out of the check (they decide nothing about existence); the request
// that follows rejects them without repeating them.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if bad := b.unconvertible(req); len(bad) > 0 {
		cp := *req
		cp.Data = maps.Clone(req.Data)
		for _, f := range bad {
			delete(cp.Data, f.name)
		}
		return b.Backend.HandleExistenceCheck(ctx, &cp)
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

type namedField struct {
	name   string
	schema *framework.FieldSchema
}

// unconvertible lists, in name order, the fields of a request that its path
// declares but cannot convert to their declared types.
func (b *backend) unconvertible(req *logical.Request) []namedField {
	if len(req.Data) == 0 {
		return nil
	}
	p := b.Route(req.Path)
	if p == nil {
		return nil
	}
	var bad []namedField
	for _, name := range slices.Sorted(maps.Keys(req.Data)) {
		schema, ok := p.Fields[name]
		if !ok || strings.Contains(p.Pattern, "(?P<"+name+">") {
			// Unknown fields are ignored with a warning; a field the URL
			// captures takes the URL's value.
			continue
		}
		fd := &framework.FieldData{Raw: map[string]any{name: req.Data[name]}, Schema: map[string]*framework.FieldSchema{name: schema}}
		if _, _, err := fd.GetOkErr(name); err != nil {
			bad = append(bad, namedField{name, schema})
		}
	}
	return bad
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
	c, err := b.newConnection(cfg, s)
	if err != nil {
		return nil, err
	}
	if cfg.Generation != b.generation {
		// Another node wrote the config (a rotation keeps the generation).
		b.cache.flush()
		b.generation = cfg.Generation
	}
	c.epoch = b.cache.currentEpoch()
	b.conn.Store(c)
	return c, nil
}

func (b *backend) newConnection(cfg *smsConfig, s logical.Storage) (*connection, error) {
	// Built without the request's context: the client outlives this request.
	client, err := newClient(cfg, &b.stats.requests, b.now, b.logger, b.loginGate(s, cfg.Password), b.idTokenSource(cfg))
	if err != nil {
		return nil, fmt.Errorf("building the SMS client from the stored config: %w", err)
	}
	b.cache.resize(cfg.CacheMaxEntries)
	return &connection{cfg: cfg, client: client, policy: cachePolicy{ttl: cfg.CacheTTL, staleIfError: cfg.StaleIfError}, storage: s}, nil
}

// swapConnection replaces the connection after a rotation, keeping the
// cache: the answers cached are as valid as before. Reads in flight finish
// with the old client (or retry with the new one, see withRetryOnRotation);
// it is closed once they must have ended. When expect is not nil, the swap
// happens only if expect is still the connection; the one in place is
// returned either way.
func (b *backend) swapConnection(cfg *smsConfig, s logical.Storage, expect *connection) (*connection, error) {
	c, err := b.newConnection(cfg, s)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.conn.Load()
	if expect != nil && old != expect {
		c.client.Close()
		return old, nil
	}
	c.epoch = b.cache.currentEpoch()
	b.conn.Store(c)
	if old != nil {
		time.AfterFunc(2*old.cfg.RequestTimeout, old.client.Close)
	}
	b.generation = cfg.Generation
	return c, nil
}

// reset is the one place that drops everything derived from the config: the
// client (and with it any IAM token) and every cached passphrase.
func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.conn.Swap(nil); old != nil {
		old.client.Close()
	}
	b.cache.flush()
}

// dropConnection drops the client (and any IAM token), keeping the cache.
func (b *backend) dropConnection() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.conn.Swap(nil); old != nil {
		old.client.Close()
	}
}

// invalidate runs when another node (a standby, a replication secondary)
// changed a storage key of this mount.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStorageKey:
		// The next read loads the new config; it flushes the cache unless
		// the change was a rotation (the generation tells).
		b.dropConnection()
	case strings.HasPrefix(key, roleStoragePrefix):
		b.roles.forget(strings.TrimPrefix(key, roleStoragePrefix))
	}
}

// periodic is called by Vault about once a minute, on the active node: it
// frees expired entries and rotates the root credential when it is due.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if c := b.conn.Load(); c != nil {
		b.cache.removeExpired(c.policy)
	}
	if req != nil && req.Storage != nil {
		b.rotateIfDue(ctx, req.Storage)
	}
	return nil
}
