package huawei

import (
	"context"
	"net/http"
)

// authenticator adds credentials to a request. The transport calls it for
// every attempt, so a signature always carries a fresh date and a renewed
// token is picked up by the next retry.
type authenticator interface {
	authorize(ctx context.Context, req *http.Request) error
}

// renewer is implemented by authenticators whose credential can be revoked
// before it expires (IAM tokens): after a 401, the client drops the
// credential the rejected request carried and retries once.
type renewer interface {
	renew(rejected *http.Request)
}

// staticToken sends a token written by the operator as X-Auth-Token.
type staticToken struct{ token Secret }

func (t staticToken) authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("X-Auth-Token", string(t.token))
	return nil
}
