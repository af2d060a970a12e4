package sms

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCache(b *backend) []*framework.Path {
	counter := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeInt64, Description: desc}
	}
	return []*framework.Path{{
		Pattern:      "cache",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "cache"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCacheRead,
				Summary:  "Read cache and upstream statistics (never a passphrase).",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"entries":              counter("Passphrases held now (fresh, or within stale_if_error)."),
						"hits":                 counter("Reads answered from the cache."),
						"misses":               counter("Reads that needed an upstream fetch (their own or one in flight)."),
						"upstream_requests":    counter("HTTP requests sent to SMS, retries included."),
						"upstream_errors":      counter("Upstream fetches that failed after their retries."),
						"stale_served":         counter("Reads answered with an expired entry because SMS failed (stale_if_error)."),
						"task_entries":         counter("Task metadata (name, enterprise project, state) held now, for role scope checks, markers of tasks SMS will not show included."),
						"task_hits":            counter("Scope checks answered from the cache."),
						"task_misses":          counter("Scope checks that needed an upstream fetch (ShowTask)."),
						"task_stale_served":    counter("Scope checks answered with expired metadata because SMS failed (stale_if_error)."),
						"certkey_entries":      counter("Certificate-and-keys answers held now (with and without the CA count apart)."),
						"certkey_hits":         counter("Certkey reads answered from the cache."),
						"certkey_misses":       counter("Certkey reads that needed an upstream fetch."),
						"certkey_stale_served": counter("Certkey reads answered with an expired entry because SMS failed (stale_if_error)."),
						"role_rate_limited":    counter("Upstream fetches not started because a role's max_upstream_rps left no slot before request_timeout (a 429, unless stale_if_error covered it)."),
					}}},
				},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:  b.pathCacheFlush,
				Summary:   "Flush everything cached: passphrases, task metadata, certificates and keys.",
				Responses: map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
		},
		HelpSynopsis:    "Statistics and flushing of the cache of upstream answers.",
		HelpDescription: "Counters are cumulative since the mount was loaded; a flush empties the cache but keeps them.",
	}}
}

func (b *backend) pathCacheRead(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	if c := b.conn.Load(); c != nil {
		b.cache.removeExpired(c.policy)
	}
	entries := b.cache.lenByKind()
	return &logical.Response{Data: map[string]any{
		"entries":              entries[kindPassphrase],
		"hits":                 b.cache.stats[kindPassphrase].hits.Load(),
		"misses":               b.cache.stats[kindPassphrase].misses.Load(),
		"upstream_requests":    b.stats.requests.Load(),
		"upstream_errors":      b.stats.errors.Load(),
		"stale_served":         b.cache.stats[kindPassphrase].staleServed.Load(),
		"task_entries":         entries[kindTask],
		"task_hits":            b.cache.stats[kindTask].hits.Load(),
		"task_misses":          b.cache.stats[kindTask].misses.Load(),
		"task_stale_served":    b.cache.stats[kindTask].staleServed.Load(),
		"certkey_entries":      entries[kindCertKey] + entries[kindCertKeyCA],
		"certkey_hits":         b.cache.stats[kindCertKey].hits.Load() + b.cache.stats[kindCertKeyCA].hits.Load(),
		"certkey_misses":       b.cache.stats[kindCertKey].misses.Load() + b.cache.stats[kindCertKeyCA].misses.Load(),
		"certkey_stale_served": b.cache.stats[kindCertKey].staleServed.Load() + b.cache.stats[kindCertKeyCA].staleServed.Load(),
		"role_rate_limited":    b.stats.roleLimited.Load(),
	}}, nil
}

func (b *backend) pathCacheFlush(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	b.cache.flush()
	return nil, nil
}
