package huawei

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// callKey carries, in a request's context, what the transport must know of
// the call: whether to add credentials and how large a success body may be.
type callKey struct{}

type callInfo struct {
	anonymous bool  // send no credentials (IAM's token request)
	limit     int64 // the largest 2xx body accepted
}

func infoOf(ctx context.Context) callInfo {
	if ci, ok := ctx.Value(callKey{}).(callInfo); ok {
		return ci
	}
	return callInfo{limit: maxErrorBody}
}

// brokenBody is a response whose body could not be read whole: the
// connection closed or reset before Content-Length bytes, a corrupt gzip
// stream, a deadline in the middle. It is a failed attempt like a reset
// before the headers, retried the same way.
type brokenBody struct {
	status int
	err    error
}

func (e *brokenBody) Error() string {
	return fmt.Sprintf("HTTP %d answer unreadable: %v", e.status, e.err)
}
func (e *brokenBody) Unwrap() error { return e.err }

// authTransport is the one path every request takes. For each attempt it
// applies the rate limit and the credentials, counts the request, and reads
// the answer's body, bounded, before anything else sees it: whatever the
// status, a caller gets either an answer held whole in memory or an error.
type authTransport struct {
	base    http.RoundTripper
	service string
	host    string // the only host credentials are sent to
	auth    authenticator
	limiter *rate.Limiter
	rps     float64
	count   *atomic.Uint64
	redact  *redactor
	now     func() time.Time
	logger  hclog.Logger
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		// Unreachable while redirects are off; kept so that no future change
		// can send credentials to another host.
		return nil, &Error{Kind: KindBadResponse, Service: t.service, Detail: "request to a host other than the configured endpoint refused"}
	}
	info := infoOf(req.Context())
	if t.limiter != nil {
		if err := t.limiter.Wait(req.Context()); err != nil {
			return nil, &Error{Kind: KindRateLimited, Service: t.service, Detail: fmt.Sprintf(
				"request not sent: max_upstream_rps (%g) left no slot before the read's deadline (request_timeout)", t.rps)}
		}
	}
	// RoundTrippers must not modify the request they are given.
	out := req.Clone(req.Context())
	if !info.anonymous && t.auth != nil {
		if err := t.auth.authorize(req.Context(), out); err != nil {
			return nil, err
		}
	}

	if t.count != nil {
		t.count.Add(1)
	}
	start := t.now()
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		// net/http's errors quote what the upstream sent ("malformed HTTP
		// status code ..."): clean them here, where the credentials this
		// request carried are known.
		err = t.cleaned(err, out)
		t.logger.Debug("upstream request failed", "service", t.service, "path", req.URL.Path,
			"latency", t.now().Sub(start).String(), "error", err.Error())
		return nil, err
	}

	limit := int64(maxErrorBody)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		limit = info.limit
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	_ = resp.Body.Close()
	if t.logger.IsDebug() {
		t.logger.Debug("upstream request", "service", t.service, "path", req.URL.Path, "status", resp.StatusCode,
			"latency", t.now().Sub(start).String(), "request_id", t.redact.clean(resp.Header.Get("X-Request-Id"), append(sentCredentials(out), resp.Header.Get("X-Subject-Token"))...))
	}
	if readErr != nil {
		return nil, &brokenBody{status: resp.StatusCode, err: t.cleaned(readErr, out)}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	// The request as sent, credentials included, for redacting what the
	// upstream quotes back; it is never logged.
	resp.Request = out
	return resp, nil
}

// cleanError is a transport error whose text was stripped of credentials;
// it still unwraps to the original for errors.Is and errors.As.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

func (t *authTransport) cleaned(err error, sent *http.Request) error {
	var uerr *url.Error
	inner := err
	if errors.As(err, &uerr) {
		inner = uerr.Err
	}
	return &cleanError{msg: t.redact.clean(inner.Error(), sentCredentials(sent)...), err: err}
}

// sentCredentials lists the credentials a request carried.
func sentCredentials(req *http.Request) []string {
	if req == nil {
		return nil
	}
	out := []string{req.Header.Get("X-Auth-Token"), req.Header.Get("X-Security-Token")}
	if sig := signatureOf(req.Header.Get("Authorization")); sig != "" {
		out = append(out, sig)
	}
	return out
}
