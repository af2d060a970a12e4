// Package huawei is a small client for the Huawei Cloud APIs the Vault SMS
// engine calls: SMS task resources and IAM tokens, with AK/SK signing,
// retries, a rate limit and bounded, credential-free error reporting. It
// imports nothing of Vault.
package huawei

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

// Authentication methods.
const (
	MethodToken     = "token"
	MethodAccessKey = "access_key"
	MethodPassword  = "password"
	MethodIDToken   = "id_token"
)

// maxErrorBody bounds error answers: they may carry a 64 KiB
// encoded_authorization_message.
const maxErrorBody = 256 << 10

// Options configures a Client. The caller validates them (URLs, lengths);
// New only refuses what it cannot build.
type Options struct {
	Endpoint    string // SMS base URL
	IAMEndpoint string // IAM base URL, for the password and id_token methods and agencies
	CACert      string // PEM bundle trusted in addition to the system roots

	Method        string // MethodToken, MethodAccessKey, MethodPassword or MethodIDToken
	Token         Secret
	AccessKey     string
	SecretKey     Secret
	SecurityToken Secret
	ProjectID     string
	DomainID      string
	Username      string
	Password      Secret
	DomainName    string
	IDPID         string                                    // identity provider ID, sent as X-Idp-Id
	IDToken       func(ctx context.Context) (Secret, error) // the JWT, asked afresh for every exchange
	// The id_token method's scope is ProjectID, or DomainID, or DomainName:
	// at most one set; none asks for an unscoped token.

	Timeout    time.Duration // bound on one call: attempts, waits and IAM included
	MaxRetries int
	MaxRPS     float64 // requests per second to SMS; 0 is unlimited

	SMSRequests *atomic.Uint64 // counts every HTTP request sent to SMS; may be nil
	UserAgent   string
	Now         func() time.Time
	Logger      hclog.Logger
	// LoginGate, when set, is asked before every login of the password
	// method; an error stops the login and is returned as the caller's. The
	// engine derives it from storage, so that every client on every node
	// honours a rotation whose outcome is unknown.
	LoginGate func(ctx context.Context) error
}

// Client calls SMS and IAM. It is built from one set of Options and
// replaced, never changed, when they change.
type Client struct {
	smsBase    string
	iamBase    string
	smsHTTP    *http.Client
	iamHTTP    *http.Client
	transport  *http.Transport
	auth       authenticator
	maxRetries int
	timeout    time.Duration
	redact     *redactor
	userAgent  string
	now        func() time.Time
	logger     hclog.Logger

	tokens *tokenSource // the password method's, else nil

	// What every client derived by WithAgency shares with this one.
	smsHost  string
	limiter  *rate.Limiter
	rps      float64
	requests *atomic.Uint64
	derived  bool // made by WithAgency: the transport is not its own
	// The agency a client made by WithAgency acts as: its refusals are
	// about the agency's policy, not the engine's own credential.
	agency *Agency

	// ctx lives as long as the client: background work (IAM token renewal)
	// stops when Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
}

// New builds a client.
func New(opts Options) (*Client, error) {
	smsURL, err := url.Parse(strings.TrimRight(opts.Endpoint, "/"))
	if err != nil || smsURL.Host == "" {
		return nil, errors.New("the SMS endpoint is not an absolute URL")
	}
	var iamURL *url.URL
	if opts.IAMEndpoint != "" {
		if iamURL, err = url.Parse(strings.TrimRight(opts.IAMEndpoint, "/")); err != nil || iamURL.Host == "" {
			return nil, errors.New("the IAM endpoint is not an absolute URL")
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CACert != "" {
		// The private CA is added to the system roots rather than replacing
		// them, so that a private SMS endpoint and the public IAM both work.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(opts.CACert)) {
			return nil, errors.New("ca_cert holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   opts.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64, // a burst of cold reads should reuse, not churn, connections
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}

	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		smsBase:    smsURL.String(),
		transport:  transport,
		maxRetries: opts.MaxRetries,
		timeout:    opts.Timeout,
		userAgent:  opts.UserAgent,
		now:        opts.Now,
		logger:     opts.Logger,
		ctx:        ctx,
		cancel:     cancel,
	}
	var held func() []string
	switch opts.Method {
	case MethodAccessKey:
		c.auth = &akskSigner{accessKey: opts.AccessKey, secretKey: opts.SecretKey, securityToken: opts.SecurityToken,
			projectID: opts.ProjectID, domainID: opts.DomainID, now: opts.Now}
	case MethodPassword:
		if iamURL == nil {
			cancel()
			return nil, errors.New("the password method needs an IAM endpoint")
		}
		ts := newTokenSource(c, iamURL.String(), opts)
		c.auth, held = ts, ts.held
		c.tokens = ts
	case MethodIDToken:
		if iamURL == nil || opts.IDToken == nil {
			cancel()
			return nil, errors.New("the id_token method needs an IAM endpoint and an ID token")
		}
		ts := newIDTokenSource(c, iamURL.String(), opts)
		c.auth, held = ts, ts.held
	default:
		c.auth = staticToken{token: opts.Token}
	}
	c.redact = newRedactor(nonEmpty(string(opts.Token), string(opts.SecretKey), string(opts.SecurityToken), string(opts.Password)), held)

	var limiter *rate.Limiter
	if opts.MaxRPS > 0 {
		// A burst of one spaces requests evenly, so no window of any length
		// sees more than the configured rate.
		limiter = rate.NewLimiter(rate.Limit(opts.MaxRPS), 1)
	}
	c.smsHost, c.limiter, c.rps, c.requests = smsURL.Host, limiter, opts.MaxRPS, opts.SMSRequests
	c.smsHTTP = c.smsClient(c.auth, c.redact)
	if iamURL != nil {
		c.iamBase = iamURL.String()
		c.iamHTTP = &http.Client{CheckRedirect: noRedirect, Transport: &authTransport{
			base: transport, service: "IAM", host: iamURL.Host, auth: c.auth, redact: c.redact, now: opts.Now, logger: opts.Logger,
		}}
	}
	return c, nil
}

// noRedirect keeps redirects from being followed: a 3xx is an error, and
// credentials never travel to a host other than the configured one.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// smsClient is the HTTP client of SMS calls made with auth: every client
// derived from this one shares its transport, rate limit and counter.
func (c *Client) smsClient(auth authenticator, redact *redactor) *http.Client {
	return &http.Client{CheckRedirect: noRedirect, Transport: &authTransport{
		base: c.transport, service: "SMS", host: c.smsHost, auth: auth, limiter: c.limiter, rps: c.rps,
		count: c.requests, redact: redact, now: c.now, logger: c.logger,
	}}
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Close stops background work and releases idle connections; a client
// made by WithAgency leaves the connections to the one it was made from.
func (c *Client) Close() {
	c.cancel()
	if !c.derived {
		c.transport.CloseIdleConnections()
	}
}

// call describes one upstream request: everything that differs between the
// calls the client makes. The rest (retries, credentials, bounds, error
// decoding) is the same for all of them.
type call struct {
	service   string // "SMS" or "IAM"
	method    string
	url       string
	body      []byte      // JSON, or nil
	limit     int64       // the largest success body accepted
	anonymous bool        // send no credentials
	noRetry   bool        // not safe to repeat (creates something upstream)
	action    string      // the IAM action the call needs, named when refused
	notFound  string      // what a 404 means, in our words ("has no task ...")
	redact    []string    // secrets the call carries beyond the configured ones (a new password)
	header    http.Header // request headers beyond the usual ones (X-Idp-Id)
}

// answer is the final upstream answer of a call, its body read whole.
type answer struct {
	status   int
	header   http.Header
	body     []byte
	tooLarge bool
	attempts int
	sent     *http.Request // as sent, credentials included: for redaction, never logged
}

// do sends a call with retries and returns its final answer. A 401 to a call
// made with an IAM token drops that token and tries once more with a new one:
// a token can be revoked before it expires. Every error is an *Error.
func (c *Client) do(ctx context.Context, k call) (*answer, error) {
	ans, err := c.send(ctx, k)
	if err != nil || ans.status != http.StatusUnauthorized || k.anonymous {
		return ans, err
	}
	r, ok := c.auth.(renewer)
	if !ok || ans.sent == nil {
		return ans, nil
	}
	r.renew(ans.sent)
	attempts := ans.attempts
	ans, err = c.send(ctx, k)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Attempts += attempts
		}
		return nil, err
	}
	ans.attempts += attempts
	return ans, nil
}

func (c *Client) send(ctx context.Context, k call) (*answer, error) {
	httpClient := c.smsHTTP
	if k.service == "IAM" {
		httpClient = c.iamHTTP
	}
	policy := &retryPolicy{}
	retries := c.maxRetries
	if k.noRetry {
		retries = 0
	}
	rc := &retryablehttp.Client{
		HTTPClient:     httpClient,
		RetryWaitMin:   retryWaitMin,
		RetryWaitMax:   retryWaitMax,
		RetryMax:       retries,
		CheckRetry:     policy.check,
		Backoff:        policy.backoff,
		RequestLogHook: policy.onAttempt,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
	}
	ctx = context.WithValue(ctx, callKey{}, callInfo{anonymous: k.anonymous, limit: k.limit})
	var body any
	if k.body != nil {
		body = k.body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, k.method, k.url, body)
	if err != nil {
		return nil, &Error{Kind: KindInternal, Service: k.service, Detail: "request could not be built"}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if k.body != nil {
		req.Header.Set("Content-Type", "application/json;charset=utf8")
	}
	for name, values := range k.header {
		req.Header[name] = values
	}

	resp, err := rc.Do(req)
	if err != nil {
		return nil, c.transportFailure(ctx, k.service, err, policy.attempts, k.redact)
	}
	// The transport read the body whole into memory: this cannot fail.
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	ans := &answer{status: resp.StatusCode, header: resp.Header, body: raw, attempts: policy.attempts, sent: resp.Request}
	limit := int64(maxErrorBody)
	if ans.status >= 200 && ans.status < 300 {
		limit = k.limit
	}
	if int64(len(raw)) > limit {
		ans.body, ans.tooLarge = nil, true
	}
	return ans, nil
}

// transportFailure describes a call that got no usable HTTP answer.
func (c *Client) transportFailure(ctx context.Context, service string, err error, attempts int, extra []string) *Error {
	var e *Error
	if errors.As(err, &e) {
		// Raised by the authenticator (IAM), the rate limit or the host check.
		cp := *e
		if cp.Attempts == 0 {
			cp.Attempts = attempts
		}
		return &cp
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Kind: KindTimeout, Service: service, Attempts: attempts, Detail: "did not answer within request_timeout"}
	}
	var broken *brokenBody
	if errors.As(err, &broken) {
		return &Error{Kind: KindBroken, Service: service, Status: broken.status, Attempts: attempts,
			Detail: "sent an answer that could not be read whole: " + c.redact.clean(describeNetError(broken.err), extra...)}
	}
	return &Error{Kind: KindUnreachable, Service: service, Attempts: attempts,
		Detail: "could not be reached: " + c.redact.clean(describeNetError(err), extra...)}
}

func describeNetError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := err.Error()
	if isCertError(err) {
		msg += " (set ca_cert if the endpoint uses a private CA)"
	}
	return msg
}

func isCertError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifying *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verifying)
}

// failure extracts what an error body says, in any of the shapes Huawei Cloud
// services use: {error_code, error_msg}, {code, message} or
// {error: {code, message, title}}. encoded_authorization_message is ignored.
// It reports whether the body was one of them.
func (c *Client) failure(k call, ans *answer) (*Error, bool) {
	sent := append(sentCredentials(ans.sent), k.redact...)
	clean := func(s string) string { return c.redact.clean(s, sent...) }
	e := &Error{Service: k.service, Status: ans.status, RequestID: clean(ans.header.Get("X-Request-Id")), Attempts: ans.attempts}
	var body struct {
		ErrorCode json.RawMessage `json:"error_code"`
		ErrorMsg  string          `json:"error_msg"`
		Code      json.RawMessage `json:"code"`
		Message   string          `json:"message"`
		RequestID string          `json:"request_id"`
		Error     *struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
			Title   string          `json:"title"`
		} `json:"error"`
	}
	if len(ans.body) == 0 || json.Unmarshal(ans.body, &body) != nil {
		return e, false
	}
	code, msg := rawString(body.ErrorCode), body.ErrorMsg
	if code == "" {
		code = rawString(body.Code)
	}
	if msg == "" {
		msg = body.Message
	}
	if body.Error != nil {
		if code == "" {
			code = rawString(body.Error.Code)
		}
		if msg == "" {
			msg = strings.TrimSpace(body.Error.Title + ": " + body.Error.Message)
		}
	}
	e.Code, e.Message = clean(code), clean(msg)
	if e.RequestID == "" {
		e.RequestID = clean(body.RequestID)
	}
	return e, code != "" || msg != ""
}

// rawString reads a JSON string or number as text.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// classify turns an answer that is not the call's success into an error.
func (c *Client) classify(k call, ans *answer) *Error {
	e, recognised := c.failure(k, ans)
	switch s := ans.status; {
	case s == http.StatusNotFound && strings.HasPrefix(e.Code, "APIGW."):
		// The gateway, not the service, answered: the URL does not name the API.
		e.Kind, e.Detail = KindBadResponse, "API gateway does not serve this API; check the endpoint in the engine's config"
	case s == http.StatusNotFound && !recognised:
		// No error body of the service: a proxy or a wrong endpoint, not an
		// answer about the resource.
		e.Kind, e.Detail = KindBadResponse, "answered 404 without an error body of the service; check the endpoint in the engine's config"
	case s == http.StatusNotFound && k.notFound != "":
		e.Kind, e.Detail = KindNotFound, k.notFound
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Kind, e.Detail = KindRefused, "refused the engine's credentials"
		if k.action != "" {
			e.Hint = "check the credentials in the engine's config and that they hold the IAM permission " + k.action
		}
		if a := c.agency; a != nil {
			// Pointing at the engine's config would have the operator grant
			// SMS rights to the one credential meant to hold none.
			e.Detail = fmt.Sprintf("refused the temporary credentials of agency %q of account %q", a.Name, a.account())
			if k.action != "" {
				e.Hint = fmt.Sprintf("check that the policy attached to agency %q of account %q allows %s on this task's enterprise project "+
					"(the engine's own credential needs no SMS permission)", a.Name, a.account(), k.action)
			}
		}
	case s == http.StatusTooManyRequests:
		e.Kind, e.Detail = KindThrottled, "throttled the request"
	case s >= 500:
		e.Kind, e.Detail = KindServer, "failed"
	case s >= 300 && s < 400:
		e.Kind, e.Detail = KindBadResponse, "answered with a redirect, which the engine never follows"
	default:
		e.Kind, e.Detail = KindBadResponse, "answered with an unexpected status"
	}
	return e
}

// bad is an error for a success answer the engine cannot use.
func (c *Client) bad(k call, ans *answer, detail string) *Error {
	e, _ := c.failure(k, ans)
	e.Code, e.Message = "", ""
	e.Kind, e.Detail = KindBadResponse, detail
	return e
}

// decode reads a success answer's JSON body into v.
func (c *Client) decode(k call, ans *answer, v any) error {
	if ans.tooLarge {
		return c.bad(k, ans, fmt.Sprintf("answered with a body over %d KiB", k.limit>>10))
	}
	if err := json.Unmarshal(ans.body, v); err != nil {
		return c.bad(k, ans, "answered with malformed JSON")
	}
	return nil
}

// recovered turns a panic into an error, so that no upstream answer can end
// the process that serves every mount. The panic value is not repeated: it
// could hold anything.
func recovered(service string, logger hclog.Logger, err *error) {
	if r := recover(); r != nil {
		logger.Error("internal error: recovered from a panic in an upstream call", "service", service, "panic_type", fmt.Sprintf("%T", r))
		*err = &Error{Kind: KindInternal, Service: service, Detail: "call failed with an internal error in the engine (see Vault's log)"}
	}
}
