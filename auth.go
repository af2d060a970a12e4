package sms

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// authenticator adds credentials to a request bound for the SMS endpoint. The
// client calls it for every attempt, so a signature always carries a fresh
// date and a renewed token is picked up by the next retry.
type authenticator interface {
	authorize(ctx context.Context, req *http.Request) error
}

// renewer is implemented by authenticators whose credential can be revoked
// before it expires (IAM tokens): after SMS answers 401, the client drops the
// credential the rejected request carried and retries once.
type renewer interface {
	renew(rejected *http.Request)
}

// staticToken sends a token written by the operator as X-Auth-Token.
type staticToken struct{ token secret }

func (t staticToken) authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("X-Auth-Token", string(t.token))
	return nil
}

// newAuthenticator builds the method the config selects. iamHTTP is the client
// the password method uses to reach IAM; it shares the SMS client's TLS roots,
// and scrub its removal of credentials from upstream text.
func newAuthenticator(cfg *smsConfig, iamHTTP *http.Client, scrub *strings.Replacer, now func() time.Time, logger hclog.Logger) authenticator {
	switch cfg.authMethod() {
	case authMethodAccessKey:
		return &akskSigner{
			accessKey:     cfg.AccessKey,
			secretKey:     cfg.SecretKey,
			securityToken: cfg.SecurityToken,
			projectID:     cfg.ProjectID,
			domainID:      cfg.DomainID,
			now:           now,
		}
	case authMethodPassword:
		return newIAMTokenSource(cfg, iamHTTP, scrub, now, logger)
	default:
		return staticToken{token: cfg.Token}
	}
}
