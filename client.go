package sms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

const (
	maxPassphraseBody = 64 << 10  // a 200 answer larger than this is refused
	maxErrorBody      = 256 << 10 // error bodies may carry a 64 KiB encoded_authorization_message
	maxPassphraseLen  = 255

	retryWaitMin  = 100 * time.Millisecond
	retryWaitMax  = 2 * time.Second
	maxRetryAfter = 10 * time.Second // a longer Retry-After ends the retries at once
)

func userAgent() string { return "vault-plugin-secrets-sms/" + Version }

func trimSlash(s string) string { return strings.TrimRight(s, "/") }

// upstreamStats are the counters sms/cache reports about SMS itself. They
// belong to the backend, so they survive config changes.
type upstreamStats struct {
	requests atomic.Uint64 // HTTP requests sent to SMS, retries included
	errors   atomic.Uint64 // upstream fetches that failed, after retries
}

// smsClient knows the SMS API and nothing about Vault. It is built from one
// config and replaced, never mutated, when the config changes.
type smsClient struct {
	baseURL    string
	http       *http.Client
	transport  *http.Transport
	auth       authenticator
	maxRetries int
	timeout    time.Duration
	scrub      *strings.Replacer
	logger     hclog.Logger
}

func newClient(cfg *smsConfig, stats *upstreamStats, now func() time.Time, logger hclog.Logger) (*smsClient, error) {
	base, err := url.Parse(cfg.endpointURL())
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		// The private CA is added to the system roots rather than replacing
		// them, so that a private SMS endpoint and the public IAM both work.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, errors.New("ca_cert holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   cfg.RequestTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64, // a burst of cold reads should reuse, not churn, connections
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	// Redirects are never followed: a 3xx is an error, and credentials never
	// travel to a host other than the configured one.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	iamHTTP := &http.Client{Transport: transport, CheckRedirect: noRedirect}
	auth := newAuthenticator(cfg, iamHTTP, now, logger)

	var limiter *rate.Limiter
	if cfg.MaxUpstreamRPS > 0 {
		// A burst of one spaces requests evenly, so no window of any length
		// sees more than the configured rate.
		limiter = rate.NewLimiter(rate.Limit(cfg.MaxUpstreamRPS), 1)
	}

	c := &smsClient{
		baseURL:    base.String(),
		transport:  transport,
		auth:       auth,
		maxRetries: cfg.MaxRetries,
		timeout:    cfg.RequestTimeout,
		scrub:      newScrubber(cfg.secretValues()),
		logger:     logger,
	}
	c.http = &http.Client{
		Transport: &authTransport{
			base: transport, host: base.Host, auth: auth, limiter: limiter,
			rps: cfg.MaxUpstreamRPS, stats: stats, now: now, logger: logger,
		},
		CheckRedirect: noRedirect,
	}
	return c, nil
}

// close releases idle connections of a client that a config change replaced.
func (c *smsClient) close() { c.transport.CloseIdleConnections() }

// passphrase performs the one upstream call the engine exists for. Everything
// it returns as an error is an *upstreamError. The whole call, retries and
// rate-limit waits included, ends within request_timeout.
func (c *smsClient) passphrase(ctx context.Context, taskID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	target := c.baseURL + "/v3/tasks/" + url.PathEscape(taskID) + "/passphrase"
	ex, err := c.get(ctx, target)
	if err != nil {
		return "", err
	}
	if ex.status == http.StatusUnauthorized {
		// An IAM token can be revoked before it expires: get a new one and try
		// once more. Static tokens and signatures would only fail again.
		if r, ok := c.auth.(renewer); ok && ex.request != nil {
			r.renew(ex.request)
			attempts := ex.attempts
			if ex, err = c.get(ctx, target); err != nil {
				return "", err
			}
			ex.attempts += attempts
		}
	}
	return c.decodePassphrase(taskID, ex)
}

func (c *smsClient) scrubText(s string) string { return sanitize(s, c.scrub) }

// get sends one GET with retries and returns the final answer, its body read.
func (c *smsClient) get(ctx context.Context, target string) (*exchange, error) {
	policy := &retryPolicy{}
	rc := &retryablehttp.Client{
		HTTPClient:     c.http,
		RetryWaitMin:   retryWaitMin,
		RetryWaitMax:   retryWaitMax,
		RetryMax:       c.maxRetries,
		CheckRetry:     policy.check,
		Backoff:        policy.backoff,
		RequestLogHook: policy.onAttempt,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, &upstreamError{kind: failBadResponse, service: "SMS", detail: "request could not be built"}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent())

	var ex *exchange
	// Reading the body inside the retry loop lets a connection reset in the
	// middle of a body be retried like one before the headers.
	req.SetResponseHandler(func(resp *http.Response) error {
		defer resp.Body.Close()
		var readErr error
		ex, readErr = readExchange(resp, bodyLimit(resp.StatusCode))
		return readErr
	})

	resp, err := rc.Do(req)
	if err != nil {
		return nil, transportFailure("SMS", ctx, err, policy.attempts)
	}
	if ex == nil || ex.raw != resp {
		// The retries ran out on a retryable status: its body is still unread.
		defer resp.Body.Close()
		ex, _ = readExchange(resp, bodyLimit(resp.StatusCode))
	}
	ex.attempts = policy.attempts
	return ex, nil
}

func bodyLimit(status int) int64 {
	if status == http.StatusOK {
		return maxPassphraseBody
	}
	return maxErrorBody
}

// decodePassphrase turns the final answer into a passphrase or an error.
func (c *smsClient) decodePassphrase(taskID string, ex *exchange) (string, error) {
	if ex.status == http.StatusOK {
		bad := func(detail string) error {
			ue := ex.failure("SMS", c.scrubText)
			ue.kind, ue.detail = failBadResponse, detail
			return ue
		}
		if ex.tooLarge {
			return "", bad(fmt.Sprintf("answered with a body over %d KiB", maxPassphraseBody>>10))
		}
		var body struct {
			TaskID     *string `json:"task_id"`
			Passphrase *string `json:"passphrase"`
		}
		if err := json.Unmarshal(ex.body, &body); err != nil {
			return "", bad("answered with malformed JSON")
		}
		switch {
		case body.Passphrase == nil:
			return "", bad("answered without a passphrase")
		case body.TaskID != nil && *body.TaskID != taskID:
			return "", bad("answered for a different task_id than the one asked for")
		case len(*body.Passphrase) > maxPassphraseLen:
			return "", bad(fmt.Sprintf("answered with a passphrase over %d characters", maxPassphraseLen))
		}
		return *body.Passphrase, nil
	}

	ue := ex.failure("SMS", c.scrubText)
	switch s := ex.status; {
	case s == http.StatusNotFound && strings.HasPrefix(ue.code, "APIGW."):
		// The gateway, not SMS, answered: the URL does not name the SMS API.
		ue.kind, ue.detail = failBadResponse, "API gateway does not serve this API; check endpoint or region in the engine's config"
	case s == http.StatusNotFound:
		ue.kind, ue.detail = failNotFound, fmt.Sprintf("has no task %q", taskID)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		ue.kind, ue.detail = failRefused, "refused the engine's credentials"
	case s == http.StatusTooManyRequests:
		ue.kind, ue.detail = failThrottled, "throttled the request"
	case s >= 500:
		ue.kind, ue.detail = failServer, "failed"
	case s >= 300 && s < 400:
		ue.kind, ue.detail = failBadResponse, "answered with a redirect, which the engine never follows"
	default:
		ue.kind, ue.detail = failBadResponse, "answered with an unexpected status"
	}
	return "", ue
}

// exchange is one upstream answer with its body read (bounded).
type exchange struct {
	status   int
	header   http.Header
	body     []byte
	tooLarge bool
	attempts int
	request  *http.Request  // as sent, credentials included; never logged
	raw      *http.Response // the answer this was read from
}

func readExchange(resp *http.Response, limit int64) (*exchange, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	ex := &exchange{status: resp.StatusCode, header: resp.Header, request: resp.Request, raw: resp}
	if int64(len(body)) > limit {
		ex.tooLarge = true
		body = nil
	}
	ex.body = body
	return ex, nil
}

func (ex *exchange) requestID() string { return ex.header.Get("X-Request-Id") }

// failure extracts what an error body says, in any of the shapes Huawei Cloud
// services use: {error_code, error_msg}, {code, message} or
// {error: {code, message, title}}. encoded_authorization_message is ignored.
func (ex *exchange) failure(service string, clean func(string) string) *upstreamError {
	ue := &upstreamError{service: service, status: ex.status, requestID: clean(ex.requestID()), attempts: ex.attempts}
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
	if len(ex.body) > 0 && json.Unmarshal(ex.body, &body) == nil {
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
		ue.code, ue.message = clean(code), clean(msg)
		if ue.requestID == "" {
			ue.requestID = clean(body.RequestID)
		}
	}
	// A token SMS echoes back must not reach the client either.
	if ex.request != nil {
		if sent := ex.request.Header.Get("X-Auth-Token"); len(sent) >= 4 {
			ue.message = strings.ReplaceAll(ue.message, sent, "<redacted>")
			ue.code = strings.ReplaceAll(ue.code, sent, "<redacted>")
		}
	}
	return ue
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

// transportFailure describes a request that got no usable HTTP answer.
func transportFailure(service string, ctx context.Context, err error, attempts int) *upstreamError {
	var ue *upstreamError
	if errors.As(err, &ue) {
		// Raised by the authenticator (IAM) or the rate limiter.
		cp := *ue
		if cp.attempts == 0 {
			cp.attempts = attempts
		}
		return &cp
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &upstreamError{kind: failTimeout, service: service, attempts: attempts,
			detail: "did not answer within request_timeout"}
	}
	return &upstreamError{kind: failUnreachable, service: service, attempts: attempts,
		detail: "could not be reached: " + describeNetError(err)}
}

func describeNetError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := sanitize(err.Error(), nil)
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

// retryPolicy is the per-call state of retryablehttp's hooks: it counts the
// attempts and decides each retry, and its wait, knowing the deadline.
type retryPolicy struct {
	attempts int
	wait     time.Duration
}

func (p *retryPolicy) onAttempt(retryablehttp.Logger, *http.Request, int) { p.attempts++ }

func (p *retryPolicy) backoff(_, _ time.Duration, _ int, _ *http.Response) time.Duration {
	return p.wait
}

// check retries connection errors, 429 and 5xx other than 501, never other
// 4xx. It gives up at once when the wait before the next attempt would pass
// the deadline, so that the caller sees the last real answer rather than a
// timeout.
func (p *retryPolicy) check(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var retry bool
	if err != nil {
		retry = transientError(err)
	} else {
		retry = resp.StatusCode == http.StatusTooManyRequests ||
			(resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented)
	}
	if !retry {
		return false, nil
	}

	wait, ok := nextWait(p.attempts, resp)
	if !ok {
		return false, nil
	}
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
		return false, nil
	}
	p.wait = wait
	return true, nil
}

// nextWait is exponential backoff with jitter, or the server's Retry-After
// when it gives one. ok is false when Retry-After asks for more than
// maxRetryAfter: waiting that long inside a Vault read helps nobody.
func nextWait(attempts int, resp *http.Response) (time.Duration, bool) {
	if resp != nil {
		if ra, has := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); has {
			return ra, ra <= maxRetryAfter
		}
	}
	base := retryWaitMin << min(max(attempts-1, 0), 10)
	if base > retryWaitMax {
		base = retryWaitMax
	}
	// "Equal jitter": at least half the base, so retries never collapse to zero
	// wait, while a fleet of clients still spreads out.
	return base/2 + rand.N(base/2+1), true
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second)+1 {
			return maxRetryAfter + time.Second, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// transientError reports whether a transport error may go away on retry:
// connection refused or reset, EOF, a body cut short. Certificate problems,
// deadlines and our own refusals (IAM, rate limit) will not.
func transientError(err error) bool {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.retryable() && ue.kind != failRateLimited && ue.kind != failTimeout
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isCertError(err) {
		return false
	}
	return true
}

// authTransport applies, for every attempt, the rate limit and the
// credentials, counts the request and logs its outcome.
type authTransport struct {
	base    http.RoundTripper
	host    string
	auth    authenticator
	limiter *rate.Limiter
	rps     float64
	stats   *upstreamStats
	now     func() time.Time
	logger  hclog.Logger
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		// Unreachable while redirects are off; kept so that no future change
		// can send credentials to another host.
		return nil, &upstreamError{kind: failBadResponse, service: "SMS", detail: "request to a host other than the configured endpoint refused"}
	}
	if t.limiter != nil {
		if err := t.limiter.Wait(req.Context()); err != nil {
			return nil, &upstreamError{kind: failRateLimited, service: "SMS", detail: fmt.Sprintf(
				"request not sent: max_upstream_rps (%g) left no slot before the read's deadline (request_timeout)", t.rps)}
		}
	}
	// RoundTrippers must not modify the request they are given.
	out := req.Clone(req.Context())
	if err := t.auth.authorize(req.Context(), out); err != nil {
		return nil, err
	}

	t.stats.requests.Add(1)
	start := t.now()
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		t.logger.Debug("sms request failed", "path", req.URL.Path, "latency", t.now().Sub(start).String(), "error", describeNetError(err))
		return nil, err
	}
	t.logger.Debug("sms request", "path", req.URL.Path, "status", resp.StatusCode,
		"latency", t.now().Sub(start).String(), "request_id", resp.Header.Get("X-Request-Id"))
	return resp, nil
}
