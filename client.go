package sms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
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

const (
	maxPassphraseBody = 64 << 10  // a 200 answer larger than this is refused
	maxErrorBody      = 256 << 10 // error bodies may carry a 64 KiB encoded_authorization_message
	maxPassphraseLen  = 255
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
	scrub := newScrubber(cfg.secretValues())
	auth := newAuthenticator(cfg, iamHTTP, scrub, now, logger)

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
		scrub:      scrub,
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
		return nil, transportFailure(ctx, "SMS", err, policy.attempts)
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
