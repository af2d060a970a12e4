package huawei

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// maxIDTokenLength bounds the JWT sent to IAM: a projected service-account
// token is about 1 KB; one far larger is not an ID token.
const maxIDTokenLength = 64 << 10

// maxRefusedJWTs is how many refused ID tokens are remembered: a file whose
// content takes turns between a few refused tokens is not an exchange per
// read, while one rotated to a new token still is at once.
const maxRefusedJWTs = 8

// jwtDigest names an ID token without keeping it.
func jwtDigest(jwt Secret) [sha256.Size]byte { return sha256.Sum256([]byte(jwt)) }

// newIDTokenSource exchanges an OpenID Connect ID token for an IAM token
// (POST /v3.0/OS-AUTH/id-token/tokens), reading the ID token afresh for
// every exchange: whoever issues it rotates it.
func newIDTokenSource(c *Client, iamBase string, opts Options) *tokenSource {
	s := &tokenSource{
		c:          c,
		noun:       "IAM token",
		what:       "a token",
		refusedLog: "IAM refused the ID token; no exchange is attempted until the backoff passes or the config is written",
		why:        "so that refused exchanges do not flood it",
	}
	url := iamBase + "/v3.0/OS-AUTH/id-token/tokens"
	s.login = func(ctx context.Context) (obtained, error) {
		return s.exchange(ctx, url, opts)
	}
	s.replaced = func(ctx context.Context) bool {
		jwt, err := opts.IDToken(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		return err == nil && jwt != "" && !slices.Contains(s.refusedJWTs, jwtDigest(jwt))
	}
	return s
}

type idTokenRequest struct {
	Auth struct {
		IDToken struct {
			ID string `json:"id"`
		} `json:"id_token"`
		Scope *idTokenScope `json:"scope,omitempty"`
	} `json:"auth"`
}

type idTokenScope struct {
	Project *scopeRef `json:"project,omitempty"`
	Domain  *scopeRef `json:"domain,omitempty"`
}

type scopeRef struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

func scopeOf(opts Options) *idTokenScope {
	switch {
	case opts.ProjectID != "":
		return &idTokenScope{Project: &scopeRef{ID: opts.ProjectID}}
	case opts.DomainID != "":
		return &idTokenScope{Domain: &scopeRef{ID: opts.DomainID}}
	case opts.DomainName != "":
		return &idTokenScope{Domain: &scopeRef{Name: opts.DomainName}}
	}
	return nil
}

func (s *tokenSource) exchange(ctx context.Context, url string, opts Options) (obtained, error) {
	jwt, err := opts.IDToken(ctx)
	if err != nil {
		// The engine guarantees the text is safe to show.
		return obtained{}, &Error{Kind: KindRefused, Service: "IAM", Detail: "was not asked for a token: " + err.Error()}
	}
	if !visibleASCII(string(jwt), maxIDTokenLength) || strings.Count(string(jwt), ".") != 2 {
		return obtained{}, &Error{Kind: KindRefused, Service: "IAM", Detail: "was not asked for a token: the ID token is empty or not a compact JWS"}
	}
	s.mu.Lock()
	if s.lastJWT != string(jwt) {
		s.prevJWT, s.lastJWT = s.lastJWT, string(jwt)
	}
	s.mu.Unlock()

	var body idTokenRequest
	body.Auth.IDToken.ID = string(jwt)
	body.Auth.Scope = scopeOf(opts)
	payload, err := json.Marshal(body)
	if err != nil {
		return obtained{}, &Error{Kind: KindInternal, Service: "IAM", Detail: "token request could not be built"}
	}

	start := s.c.now()
	k := call{service: "IAM", method: http.MethodPost, url: url, body: payload, limit: maxIAMBody, anonymous: true,
		header: http.Header{"X-Idp-Id": {opts.IDPID}}, redact: []string{string(jwt)}}
	ans, err := s.c.do(ctx, k)
	if err != nil {
		return obtained{}, err
	}
	if ans.status != http.StatusCreated && ans.status != http.StatusOK {
		e := s.c.classify(k, ans)
		if s.c.refusal(k, ans) {
			e.Kind = KindRefused
			e.Detail = fmt.Sprintf("refused the ID token (identity provider idp_id %q)", opts.IDPID)
			e.Hint = "check that the identity provider trusts the token's issuer, audience (client ID) and signing key, " +
				"that the token is valid now, and that a mapping rule of the provider matches its subject"
			s.mu.Lock()
			if d := jwtDigest(jwt); !slices.Contains(s.refusedJWTs, d) {
				s.refusedJWTs = append(s.refusedJWTs, d)
				if len(s.refusedJWTs) > maxRefusedJWTs {
					s.refusedJWTs = s.refusedJWTs[1:]
				}
			}
			s.mu.Unlock()
			s.remember(e)
		} else {
			tokenFailure(e)
		}
		return obtained{}, e
	}
	tok, lifetime, _, err := s.c.iamToken(k, ans)
	if err != nil {
		return obtained{}, err
	}
	return obtained{cred: credential{token: tok}, start: start, lifetime: lifetime}, nil
}

// refusal reports whether IAM's answer refuses what was asked (400, 401,
// 403, or 404 with IAM's own error body), rather than coming from a gateway
// that does not serve the API or from a wrong endpoint.
func (c *Client) refusal(k call, ans *answer) bool {
	switch ans.status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	case http.StatusNotFound:
		e, recognised := c.failure(k, ans)
		return recognised && !strings.HasPrefix(e.Code, "APIGW.")
	}
	return false
}
