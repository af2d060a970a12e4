package huawei

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Backoff bounds. The whole of a fetch is further bounded by request_timeout.
const (
	retryWaitMin  = 100 * time.Millisecond
	retryWaitMax  = 2 * time.Second
	maxRetryAfter = 10 * time.Second // a longer Retry-After ends the retries at once
)

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
		// No retry; the attempt's own error (an IAM failure, say) says more
		// than the expired context does.
		return false, nil //nolint:nilerr // the caller reports the attempt's error, not this one
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
	return base/2 + rand.N(base/2+1), true //nolint:gosec // jitter spreads retries; nothing secret depends on it
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
// connection refused or reset, EOF, a body cut short or corrupt. Certificate
// problems, deadlines and the client's own refusals will not, and failures of
// the authenticator (IAM) are not retried here: IAM calls have retries of
// their own, and a remembered refusal must stay one call.
func transientError(err error) bool {
	var ue *Error
	if errors.As(err, &ue) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isCertError(err) {
		return false
	}
	return true
}
