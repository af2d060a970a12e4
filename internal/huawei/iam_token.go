package huawei

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	// maxRenewMargin bounds how long before expiry a token is renewed; a
	// tenth of the lifetime is used when that is shorter.
	maxRenewMargin = 15 * time.Minute
	// maxSkewMargin bounds how long before expiry a token stops being used,
	// for clock skew; a twentieth of the lifetime is used when shorter.
	maxSkewMargin = 30 * time.Second
	// A failed renewal, while the current token is still usable, is tried
	// again on a later read, but no sooner than this.
	renewalRetryInterval = 5 * time.Second
	// After IAM refuses the credentials, no login is attempted for a
	// backoff that starts here and doubles up to maxRefusalBackoff: every
	// failed login brings the IAM user closer to Huawei's lockout.
	firstRefusalBackoff = 30 * time.Second
	maxRefusalBackoff   = 5 * time.Minute
	maxIAMBody          = 64 << 10
	maxTokenLength      = 16384
)

// tokenSource obtains a credential from IAM with its login (the password
// method's token, an ID token's exchange, an agency's temporary keys) and
// keeps it until shortly before it expires. A credential is renewed in the
// background from a tenth of its lifetime before expiry, so that no read
// waits for IAM, or fails because of it, while a usable one exists.
// Concurrent callers that find no usable credential share one IAM call.
type tokenSource struct {
	c     *Client
	login func(ctx context.Context) (obtained, error)
	gate  func(ctx context.Context) error
	// noun names what the source holds at the start of a log line, what
	// within an error; refusedLog is the line logged once per refusal, why
	// the reason a refusal is remembered.
	noun       string
	what       string
	refusedLog string
	why        string

	// The password method's.
	url        string
	username   string
	password   Secret
	domainName string

	group singleflight.Group

	mu      sync.Mutex
	cred    credential
	lastJWT string // the ID token of the last exchange, for redaction
	// prevJWT is the one exchanged before, for redaction too: a rotated
	// token stays valid a while after its successor is written.
	prevJWT string
	// refusedJWTs are digests of the ID tokens IAM last refused, oldest
	// first (at most maxRefusedJWTs).
	refusedJWTs [][sha256.Size]byte
	// replaced, when set, reports whether the credential a remembered
	// refusal was about has been replaced since (a new ID token).
	replaced    func(ctx context.Context) bool
	renewAt     time.Time // renewal is due from here
	usableUntil time.Time // expiry less the clock-skew margin
	renewing    bool      // a background renewal is running
	nextRenewal time.Time // no background renewal before this, after one failed
	refusal     *Error    // IAM's last refusal of the credentials
	refusedTill time.Time // no login before this
	backoff     time.Duration
	userID      string    // token.user.id of the last token
	pwExpires   time.Time // token.user.password_expires_at of the last token; zero: never
	pwExpiresOK bool      // a token has told it
	retired     bool      // the password is being replaced: no login with it

	// fetching is held, shared, by every login in flight; retire takes it
	// to wait for them.
	fetching sync.RWMutex
}

func newTokenSource(c *Client, iamBase string, opts Options) *tokenSource {
	s := &tokenSource{
		c:          c,
		url:        iamBase + "/v3/auth/tokens?nocatalog=true",
		username:   opts.Username,
		password:   opts.Password,
		domainName: opts.DomainName,
		gate:       opts.LoginGate,
		noun:       "IAM token",
		what:       "a token",
		refusedLog: "IAM refused the engine's credentials; no login is attempted until the backoff passes or the config is written",
		why:        "so that the user is not locked out",
	}
	s.login = s.passwordLogin
	return s
}

func (s *tokenSource) authorize(ctx context.Context, req *http.Request) error {
	cred, err := s.current(ctx)
	if err != nil {
		return err
	}
	return cred.apply(ctx, req, s.c.now)
}

// held returns the credentials in use, and the last ID token, for
// redaction.
func (s *tokenSource) held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(s.cred.secrets(), nonEmpty(s.lastJWT, s.prevJWT)...)
}

// renew forgets the credential a rejected request carried, unless another
// caller has already replaced it.
func (s *tokenSource) renew(rejected *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cred.carriedBy(rejected) {
		s.cred = credential{}
	}
}

func (s *tokenSource) current(ctx context.Context) (credential, error) {
	now := s.c.now()
	s.mu.Lock()
	if !s.cred.empty() && now.Before(s.usableUntil) {
		cred := s.cred
		// A remembered refusal holds renewals back too: every failed login
		// brings the user closer to IAM's lockout, token held or not.
		refused := s.refusal != nil && now.Before(s.refusedTill) || s.retired
		if !now.Before(s.renewAt) && !s.renewing && !now.Before(s.nextRenewal) && !refused {
			s.renewing = true
			go s.renewAhead()
		}
		s.mu.Unlock()
		return cred, nil
	}
	if s.retired {
		s.mu.Unlock()
		return credential{}, errRetired()
	}
	if s.refusal != nil && now.Before(s.refusedTill) {
		e := *s.refusal
		s.mu.Unlock()
		// A refusal of one ID token says nothing of the next: one rotated
		// into the file since is tried at once, not after the backoff.
		if s.replaced == nil || !s.replaced(ctx) {
			e.Detail += fmt.Sprintf(" (remembered: IAM is not asked again for %s, %s; a config write retries at once)",
				s.refusedTill.Sub(now).Round(time.Second), s.why)
			return credential{}, &e
		}
	} else {
		s.mu.Unlock()
	}

	select {
	case res := <-s.group.DoChan("token", s.fetchDetached):
		if res.Err != nil {
			return credential{}, res.Err
		}
		return res.Val.(credential), nil
	case <-ctx.Done():
		return credential{}, &Error{Kind: KindTimeout, Service: "IAM", Detail: "did not issue " + s.what + " before the read's deadline"}
	}
}

// renewAhead replaces a token that is still usable. On failure the current
// token stays in use until it expires, and a later read tries again.
func (s *tokenSource) renewAhead() {
	res := <-s.group.DoChan("token", s.fetchDetached)
	s.mu.Lock()
	s.renewing = false
	left := s.usableUntil.Sub(s.c.now())
	if res.Err != nil {
		s.nextRenewal = s.c.now().Add(renewalRetryInterval)
		if s.refusal != nil && s.refusedTill.After(s.nextRenewal) {
			s.nextRenewal = s.refusedTill
		}
	}
	s.mu.Unlock()
	if res.Err != nil {
		s.c.logger.Warn(s.noun+" renewal failed; the current one stays in use until it expires",
			"usable_for", left.Round(time.Second).String(), "error", res.Err.Error())
	}
}

// fetchDetached runs one IAM call bounded by the client's timeout and
// lifetime, not by the caller that started it: the others wait for it too.
func (s *tokenSource) fetchDetached() (any, error) {
	s.fetching.RLock()
	defer s.fetching.RUnlock()
	s.mu.Lock()
	retired := s.retired
	s.mu.Unlock()
	if retired {
		return nil, errRetired()
	}
	ctx, cancel := context.WithTimeout(s.c.ctx, s.c.timeout)
	defer cancel()
	if s.gate != nil {
		if err := s.gate(ctx); err != nil {
			return nil, err
		}
	}
	return s.fetch(ctx)
}

func errRetired() *Error {
	return &Error{Kind: KindRefused, Service: "IAM",
		Detail: "was not asked for a token: a rotation is replacing the password, and a login with the old one would count towards IAM's lockout"}
}

// retire stops logins with the password, and waits for any in flight to
// end: once IAM has a new password, every login with the old one fails and
// counts towards the user's lockout. The token held stays in use until IAM
// revokes it.
func (s *tokenSource) retire(ctx context.Context) error {
	s.mu.Lock()
	s.retired = true
	s.mu.Unlock()
	for !s.fetching.TryLock() {
		select {
		case <-ctx.Done():
			s.resume() // nothing was changed: logins may go on
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.fetching.Unlock()
	return nil
}

func (s *tokenSource) resume() {
	s.mu.Lock()
	s.retired = false
	s.mu.Unlock()
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
		User      struct {
			ID                string `json:"id"`
			PasswordExpiresAt string `json:"password_expires_at"`
		} `json:"user"`
	} `json:"token"`
}

// obtained is what a login got: a credential, when the request for it was
// sent, and how long it lives.
type obtained struct {
	cred     credential
	start    time.Time
	lifetime time.Duration
}

// fetch runs the login and keeps what it got.
func (s *tokenSource) fetch(ctx context.Context) (cred any, err error) {
	defer recovered("IAM", s.c.logger, &err)
	got, err := s.login(ctx)
	if err != nil {
		return nil, err
	}
	renewMargin := min(got.lifetime/10, maxRenewMargin)
	skewMargin := min(got.lifetime/20, maxSkewMargin)
	s.mu.Lock()
	s.cred = got.cred
	s.renewAt = got.start.Add(got.lifetime - renewMargin)
	s.usableUntil = got.start.Add(got.lifetime - skewMargin)
	s.nextRenewal = time.Time{}
	s.refusal, s.refusedTill, s.backoff = nil, time.Time{}, 0
	s.mu.Unlock()
	s.c.logger.Debug(s.noun+" obtained", "lifetime", got.lifetime.String(), "renew_in", (got.lifetime - renewMargin).String())
	return got.cred, nil
}

// passwordLogin obtains a domain-scoped token with the password method.
func (s *tokenSource) passwordLogin(ctx context.Context) (obtained, error) {
	var body iamTokenRequest
	body.Auth.Identity.Methods = []string{"password"}
	body.Auth.Identity.Password.User.Name = s.username
	body.Auth.Identity.Password.User.Password = string(s.password)
	body.Auth.Identity.Password.User.Domain.Name = s.domainName
	body.Auth.Scope.Domain.Name = s.domainName
	payload, err := json.Marshal(body)
	if err != nil {
		return obtained{}, &Error{Kind: KindInternal, Service: "IAM", Detail: "token request could not be built"}
	}

	start := s.c.now()
	k := call{service: "IAM", method: http.MethodPost, url: s.url, body: payload, limit: maxIAMBody, anonymous: true}
	ans, err := s.c.do(ctx, k)
	if err != nil {
		return obtained{}, err
	}
	if ans.status != http.StatusCreated && ans.status != http.StatusOK {
		e := s.c.classify(k, ans)
		switch e.Kind {
		case KindRefused:
			e.Detail = "refused the username, password or domain_name of the engine's config"
			s.remember(e)
		default:
			tokenFailure(e)
		}
		return obtained{}, e
	}
	tok, lifetime, parsed, err := s.c.iamToken(k, ans)
	if err != nil {
		return obtained{}, err
	}

	// Empty when the password never expires; unreadable is taken as
	// unknown rather than failing a login that worked.
	pwExpires, pwErr := parsePasswordExpiresAt(parsed.Token.User.PasswordExpiresAt)
	s.mu.Lock()
	s.userID = parsed.Token.User.ID
	s.pwExpires, s.pwExpiresOK = pwExpires, pwErr == nil || parsed.Token.User.PasswordExpiresAt == ""
	if pwErr != nil {
		s.pwExpires = time.Time{}
	}
	s.mu.Unlock()
	return obtained{cred: credential{token: tok}, start: start, lifetime: lifetime}, nil
}

// tokenFailure words an IAM token call's failure other than a refusal.
func tokenFailure(e *Error) { issueFailure(e, "the token request", "a token") }

// issueFailure words the failure, other than a refusal, of an IAM call that
// issues a credential: request names the call, what the credential.
func issueFailure(e *Error, request, what string) {
	switch e.Kind {
	case KindThrottled:
		e.Detail = "throttled " + request
	case KindServer:
		e.Detail = "failed to issue " + what
	case KindBadResponse:
		// Keep the gateway's and the redirect's explanations.
	default:
		e.Kind, e.Detail = KindBadResponse, "answered "+request+" with an unexpected status; check iam_endpoint"
	}
}

// iamToken reads a token answer: the token in X-Subject-Token and its
// lifetime, measured on IAM's clock (issued_at to expires_at), to be applied
// to ours from when the request was sent, so that clock skew between Vault
// and IAM does not matter.
func (c *Client) iamToken(k call, ans *answer) (string, time.Duration, *iamTokenResponse, error) {
	tok := ans.header.Get("X-Subject-Token")
	// The answer is judged with the token it issued redacted: an answer
	// refused for the rest may still quote it (X-Request-Id, the body).
	k.redact = append(k.redact, nonEmpty(tok)...)
	if !visibleASCII(tok, maxTokenLength) {
		return "", 0, nil, c.bad(k, ans, "answered without a usable X-Subject-Token header")
	}
	var parsed iamTokenResponse
	if ans.tooLarge || json.Unmarshal(ans.body, &parsed) != nil {
		return "", 0, nil, c.bad(k, ans, "answered the token request with an unreadable body")
	}
	expires, err := time.Parse(time.RFC3339Nano, parsed.Token.ExpiresAt)
	if err != nil {
		return "", 0, nil, c.bad(k, ans, "answered without a valid token.expires_at")
	}
	lifetime := expires.Sub(c.now())
	if issued, err := time.Parse(time.RFC3339Nano, parsed.Token.IssuedAt); err == nil && expires.After(issued) {
		lifetime = expires.Sub(issued)
	}
	if lifetime <= 0 {
		return "", 0, nil, c.bad(k, ans, "issued a token that has already expired")
	}
	return tok, lifetime, &parsed, nil
}

// remember keeps IAM's refusal for a backoff, logged once at error level:
// until it passes, reads fail at once with it and IAM is not asked.
func (s *tokenSource) remember(e *Error) {
	s.mu.Lock()
	if s.backoff == 0 {
		s.backoff = firstRefusalBackoff
	} else {
		s.backoff = min(2*s.backoff, maxRefusalBackoff)
	}
	backoff := s.backoff
	cp := *e
	s.refusal, s.refusedTill = &cp, s.c.now().Add(backoff)
	s.mu.Unlock()
	s.c.logger.Error(s.refusedLog,
		"backoff", backoff.String(), "error", e.Error())
}

// visibleASCII accepts 1 to max printable ASCII characters without spaces:
// what fits in an HTTP header.
func visibleASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// RetireLogins stops the client from logging in to IAM with its password
// (the password method; a no-op otherwise), once any login in flight has
// ended: a rotation calls it before changing the password. Calls that need
// a new token then fail with a KindRefused error without asking IAM.
func (c *Client) RetireLogins(ctx context.Context) error {
	if c.tokens == nil {
		return nil
	}
	return c.tokens.retire(ctx)
}

// ResumeLogins undoes RetireLogins, after a password change that IAM
// refused.
func (c *Client) ResumeLogins() {
	if c.tokens != nil {
		c.tokens.resume()
	}
}

// PasswordExpiresAt is token.user.password_expires_at of the last token
// (the password method): zero when the password never expires; ok is false
// when no token has told it yet.
func (c *Client) PasswordExpiresAt() (at time.Time, ok bool) {
	if c.tokens == nil {
		return time.Time{}, false
	}
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	return c.tokens.pwExpires, c.tokens.pwExpiresOK
}

// Renewing reports whether a background renewal of the IAM token is running,
// so that tests can wait for one to end.
func (c *Client) Renewing() bool {
	ts, ok := c.auth.(*tokenSource)
	if !ok {
		return false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.renewing
}

// iamLocalTime is the form IAM documents for password_expires_at: UTC
// without a zone ("2023-06-28T08:56:33.710000"), as Keystone sends it.
const iamLocalTime = "2006-01-02T15:04:05.999999999"

// parsePasswordExpiresAt reads RFC 3339 first (a zone, if sent, is meant),
// then IAM's documented zoneless form, taken as UTC.
func parsePasswordExpiresAt(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation(iamLocalTime, v, time.UTC)
}
