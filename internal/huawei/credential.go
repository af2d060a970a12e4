package huawei

import (
	"context"
	"net/http"
	"time"
)

// credential is what a tokenSource holds: an IAM token, sent as
// X-Auth-Token, or temporary AK/SK with a security token, with which
// requests are signed.
type credential struct {
	token         string
	access        string
	secret        Secret
	securityToken string
}

func (c credential) empty() bool { return c.token == "" && c.access == "" }

// apply adds the credential to a request.
func (c credential) apply(ctx context.Context, req *http.Request, now func() time.Time) error {
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
		return nil
	}
	signer := &akskSigner{accessKey: c.access, secretKey: c.secret, securityToken: Secret(c.securityToken), now: now}
	return signer.authorize(ctx, req)
}

// secrets lists what must never be shown of the credential.
func (c credential) secrets() []string {
	return nonEmpty(c.token, string(c.secret), c.securityToken)
}

// carriedBy reports whether a request was sent with this credential.
func (c credential) carriedBy(req *http.Request) bool {
	switch {
	case c.token != "":
		return req.Header.Get("X-Auth-Token") == c.token
	case c.securityToken != "":
		return req.Header.Get("X-Security-Token") == c.securityToken
	}
	return false
}
