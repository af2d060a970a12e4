package sms

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

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
