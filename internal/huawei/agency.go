package huawei

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Agency names an IAM agency whose temporary credentials a client derived
// by WithAgency acts with.
type Agency struct {
	Name        string // agency_name
	DomainID    string // the delegating account: DomainID or DomainName, exactly one
	DomainName  string
	Duration    time.Duration // duration_seconds; the caller validates 15m..24h
	SessionUser string        // session_user.name; the caller derives a valid one
}

// account names the delegating account, for messages.
func (a Agency) account() string {
	if a.DomainID != "" {
		return a.DomainID
	}
	return a.DomainName
}

// Bounds of what IAM's securitytokens answer may hold.
const (
	maxTempAccessKey = 128
	maxTempSecretKey = 256
)

// WithAgency returns a client that makes every SMS call (Passphrase, Task,
// ListTasks, CertKey) with temporary credentials of the agency, obtained
// with c's own credential (whatever its method) by POST
// {IAMEndpoint}/v3.0/OS-CREDENTIAL/securitytokens, methods ["assume_role"],
// and obtained again ahead of expires_at in the background, as the IAM
// token is. It shares c's transport, SMS rate limit (max_upstream_rps is the
// mount's total), request counter, timeouts and logger. Its Close stops only
// its own background work; c.Close stops it too. Safe for concurrent use. It
// never writes anything anywhere but memory.
func (c *Client) WithAgency(a Agency) *Client {
	ctx, cancel := context.WithCancel(c.ctx)
	d := &Client{
		smsBase:    c.smsBase,
		transport:  c.transport,
		maxRetries: c.maxRetries,
		timeout:    c.timeout,
		userAgent:  c.userAgent,
		now:        c.now,
		logger:     c.logger,
		smsHost:    c.smsHost,
		limiter:    c.limiter,
		rps:        c.rps,
		requests:   c.requests,
		derived:    true,
		agency:     &a,
		ctx:        ctx,
		cancel:     cancel,
	}
	s := &tokenSource{
		c:          d,
		noun:       "agency credentials",
		what:       "the agency's temporary credentials",
		refusedLog: "IAM refused to let the engine assume an agency; IAM is not asked for it again until the backoff passes or the config is written",
		why:        "so that reads do not flood it",
	}
	s.login = func(ctx context.Context) (obtained, error) { return s.assume(ctx, c, a) }
	d.auth = s
	// What an SMS answer may quote: c's credentials as well as the
	// agency's, though only the agency's are sent.
	d.redact = newRedactor(c.redact.static, func() []string {
		held := s.held()
		if c.redact.held != nil {
			held = append(held, c.redact.held()...)
		}
		return held
	})
	d.smsHTTP = d.smsClient(s, d.redact)
	return d
}

type assumeRoleRequest struct {
	Auth struct {
		Identity struct {
			Methods    []string `json:"methods"`
			AssumeRole struct {
				AgencyName      string `json:"agency_name"`
				DomainID        string `json:"domain_id,omitempty"`
				DomainName      string `json:"domain_name,omitempty"`
				DurationSeconds int64  `json:"duration_seconds"`
				SessionUser     *struct {
					Name string `json:"name"`
				} `json:"session_user,omitempty"`
			} `json:"assume_role"`
		} `json:"identity"`
	} `json:"auth"`
}

// assume obtains the agency's temporary credentials with parent's
// credential.
func (s *tokenSource) assume(ctx context.Context, parent *Client, a Agency) (obtained, error) {
	var body assumeRoleRequest
	id := &body.Auth.Identity
	id.Methods = []string{"assume_role"}
	id.AssumeRole.AgencyName = a.Name
	id.AssumeRole.DomainID, id.AssumeRole.DomainName = a.DomainID, a.DomainName
	id.AssumeRole.DurationSeconds = int64(a.Duration / time.Second)
	if a.SessionUser != "" {
		id.AssumeRole.SessionUser = &struct {
			Name string `json:"name"`
		}{Name: a.SessionUser}
	}
	k, err := parent.iamCall(http.MethodPost, "/v3.0/OS-CREDENTIAL/securitytokens", body, false)
	if err != nil {
		return obtained{}, err
	}
	k.notFound = ""
	// IAM issued the credentials being replaced: its answer may quote them.
	k.redact = s.held()

	start := s.c.now()
	ans, err := parent.do(ctx, k)
	if err != nil {
		return obtained{}, err
	}
	if ans.status != http.StatusCreated && ans.status != http.StatusOK {
		e := parent.classify(k, ans)
		if parent.refusal(k, ans) {
			e.Kind = KindRefused
			e.Detail = fmt.Sprintf("refused to let the engine's credential assume agency %q of account %q", a.Name, a.account())
			e.Hint = "check that the engine's identity holds the Agent Operator permission, that the agency trusts the engine's account, " +
				"the agency's name and account, and that the duration is within the agency's maximum"
			s.remember(e)
			return obtained{}, e
		}
		issueFailure(e, "the request for the agency's temporary credentials", "the agency's temporary credentials")
		return obtained{}, e
	}

	var got struct {
		Credential struct {
			Access        string `json:"access"`
			Secret        string `json:"secret"`
			SecurityToken string `json:"securitytoken"`
			ExpiresAt     string `json:"expires_at"`
		} `json:"credential"`
	}
	if ans.tooLarge || json.Unmarshal(ans.body, &got) != nil {
		return obtained{}, parent.bad(k, ans, "answered the request for the agency's temporary credentials with an unreadable body")
	}
	cr := got.Credential
	// Whatever else the answer says must not repeat them.
	k.redact = append(k.redact, cr.Secret, cr.SecurityToken)
	if !visibleASCII(cr.Access, maxTempAccessKey) || !visibleASCII(cr.Secret, maxTempSecretKey) || !visibleASCII(cr.SecurityToken, maxTokenLength) {
		return obtained{}, parent.bad(k, ans, "answered without usable temporary credentials (access, secret, securitytoken)")
	}
	// IAM gives no issued_at here: the lifetime runs from when the request
	// was sent, which can only make it look shorter than it is.
	expires, err := parsePasswordExpiresAt(cr.ExpiresAt)
	if err != nil {
		return obtained{}, parent.bad(k, ans, "answered without a valid credential.expires_at")
	}
	lifetime := expires.Sub(start)
	if lifetime <= 0 {
		return obtained{}, parent.bad(k, ans, "issued temporary credentials that have already expired")
	}
	return obtained{
		cred:  credential{access: cr.Access, secret: Secret(cr.Secret), securityToken: cr.SecurityToken},
		start: start, lifetime: lifetime,
	}, nil
}
