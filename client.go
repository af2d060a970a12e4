package sms

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// The Huawei API client (SMS and IAM calls, signing, retries, transport) is
// internal/huawei, which knows nothing of Vault. This file is the engine's
// side of it: the client built from a stored config, and the counters the
// engine keeps about it.

func userAgent() string { return "vault-plugin-secrets-sms/" + Version }

// upstreamStats are the counters sms/cache reports about SMS itself. They
// belong to the backend, so they survive config changes.
type upstreamStats struct {
	requests atomic.Uint64 // HTTP requests sent to SMS, retries included
	errors   atomic.Uint64 // upstream fetches that failed, after retries
	// roleLimited counts fetches not started because a role's
	// max_upstream_rps left no slot in time.
	roleLimited atomic.Uint64
}

// newClient builds the client a config describes. It is built without a
// request's context: it outlives the request that caused it.
// loginGate, when not nil, is asked before every login (see
// backend.loginGate); the settle's own probes go without one.
// idToken is the id_token method's JWT source (see backend.idTokenSource).
func newClient(cfg *smsConfig, requests *atomic.Uint64, now func() time.Time, logger hclog.Logger, loginGate func(context.Context) error,
	idToken func(context.Context) (huawei.Secret, error)) (*huawei.Client, error) {
	return huawei.New(huawei.Options{
		Endpoint:      cfg.endpointURL(),
		IAMEndpoint:   cfg.IAMEndpoint,
		CACert:        cfg.CACert,
		Method:        cfg.authMethod(),
		Token:         cfg.Token,
		AccessKey:     cfg.AccessKey,
		SecretKey:     cfg.SecretKey,
		SecurityToken: cfg.SecurityToken,
		ProjectID:     cfg.ProjectID,
		DomainID:      cfg.DomainID,
		Username:      cfg.Username,
		Password:      cfg.Password,
		DomainName:    cfg.DomainName,
		IDPID:         cfg.IDPID,
		IDToken:       idToken,
		Timeout:       cfg.RequestTimeout,
		MaxRetries:    cfg.MaxRetries,
		MaxRPS:        cfg.MaxUpstreamRPS,
		SMSRequests:   requests,
		UserAgent:     userAgent(),
		Now:           now,
		Logger:        logger,
		LoginGate:     loginGate,
	})
}
