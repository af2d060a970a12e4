package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"
)

const (
	// maxRenewMargin bounds how long before expires_at a token is replaced. A
	// tenth of the lifetime is used when that is shorter (short-lived tokens).
	maxRenewMargin = 15 * time.Minute
	maxIAMBody     = 64 << 10
)

// iamTokenSource obtains a domain-scoped IAM user token with the password
// method and reuses it until shortly before it expires. Concurrent callers that
// find no valid token share one IAM call.
type iamTokenSource struct {
	http       *http.Client
	tokensURL  string
	username   string
	password   secret
	domainName string
	timeout    time.Duration
	scrub      func(string) string
	now        func() time.Time
	logger     hclog.Logger

	group singleflight.Group

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

func newIAMTokenSource(cfg *smsConfig, httpClient *http.Client, scrub *strings.Replacer, now func() time.Time, logger hclog.Logger) *iamTokenSource {
	return &iamTokenSource{
		http:       httpClient,
		tokensURL:  trimSlash(cfg.IAMEndpoint) + "/v3/auth/tokens?nocatalog=true",
		username:   cfg.Username,
		password:   cfg.Password,
		domainName: cfg.DomainName,
		timeout:    cfg.RequestTimeout,
		scrub:      func(s string) string { return sanitize(s, scrub) },
		now:        now,
		logger:     logger,
	}
}

func (s *iamTokenSource) authorize(ctx context.Context, req *http.Request) error {
	token, err := s.current(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", token)
	return nil
}

// renew forgets the token a rejected request carried, unless another caller
// has already replaced it.
func (s *iamTokenSource) renew(rejected *http.Request) {
	sent := rejected.Header.Get("X-Auth-Token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if sent != "" && sent == s.token {
		s.token = ""
	}
}

func (s *iamTokenSource) current(ctx context.Context) (string, error) {
	s.mu.Lock()
	token, renewAt := s.token, s.renewAt
	s.mu.Unlock()
	if token != "" && s.now().Before(renewAt) {
		return token, nil
	}

	// The IAM call must not die with the first caller's request: the others
	// wait for the same answer. Each caller still gives up on its own deadline.
	ch := s.group.DoChan("token", func() (any, error) {
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		return s.fetch(fetchCtx)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", &upstreamError{kind: failTimeout, service: "IAM", detail: "did not issue a token before the read's deadline"}
	}
}

type iamTokenRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Domain struct {
				Name string `json:"name"`
			} `json:"domain"`
		} `json:"scope"`
	} `json:"auth"`
}

type iamTokenResponse struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		IssuedAt  string `json:"issued_at"`
	} `json:"token"`
}

func (s *iamTokenSource) fetch(ctx context.Context) (string, error) {
	var body iamTokenRequest
	body.Auth.Identity.Methods = []string{"password"}
	body.Auth.Identity.Password.User.Name = s.username
	body.Auth.Identity.Password.User.Password = string(s.password)
	body.Auth.Identity.Password.User.Domain.Name = s.domainName
	body.Auth.Scope.Domain.Name = s.domainName
	payload, err := json.Marshal(body)
	if err != nil {
		return "", err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokensURL, bytes.NewReader(payload))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent())

	start := s.now()
	resp, err := s.http.Do(req)
	if err != nil {
		return "", transportFailure(ctx, "IAM", err, 1)
	}
	defer resp.Body.Close()
	ex, readErr := readExchange(resp, maxIAMBody)
	if readErr != nil {
		return "", transportFailure(ctx, "IAM", readErr, 1)
	}
	s.logger.Debug("iam token request", "status", resp.StatusCode, "latency", s.now().Sub(start).String(), "request_id", ex.requestID())

	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		ue := ex.failure("IAM", s.scrub)
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			ue.kind, ue.detail = failRefused, "refused the username, password or domain_name of the engine's config"
		case resp.StatusCode == http.StatusTooManyRequests:
			ue.kind, ue.detail = failThrottled, "throttled the token request"
		case resp.StatusCode >= 500:
			ue.kind, ue.detail = failServer, "failed to issue a token"
		default:
			ue.kind, ue.detail = failBadResponse, "answered the token request with an unexpected status"
		}
		return "", ue
	}

	token := resp.Header.Get("X-Subject-Token")
	if checkVisibleASCII(token, maxTokenLength) != nil {
		ue := ex.failure("IAM", s.scrub)
		ue.kind, ue.detail = failBadResponse, "answered without a usable X-Subject-Token header"
		return "", ue
	}
	var parsed iamTokenResponse
	_ = json.Unmarshal(ex.body, &parsed) // a missing or malformed body is caught by the expiry check below
	expires, err := time.Parse(time.RFC3339Nano, parsed.Token.ExpiresAt)
	if err != nil {
		ue := ex.failure("IAM", s.scrub)
		ue.kind, ue.detail = failBadResponse, "answered without a valid token.expires_at"
		return "", ue
	}
	// Measure the lifetime on IAM's clock (issued_at to expires_at) and apply it
	// to ours, so that clock skew between Vault and IAM does not matter.
	lifetime := expires.Sub(s.now())
	if issued, err := time.Parse(time.RFC3339Nano, parsed.Token.IssuedAt); err == nil && expires.After(issued) {
		lifetime = expires.Sub(issued)
	}
	margin := min(lifetime/10, maxRenewMargin)

	s.mu.Lock()
	s.token = token
	s.renewAt = start.Add(lifetime - margin)
	s.mu.Unlock()
	s.logger.Debug("iam token obtained", "lifetime", lifetime.String(), "renew_in", (lifetime - margin).String())
	return token, nil
}
