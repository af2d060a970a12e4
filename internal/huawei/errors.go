package huawei

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Kind classifies what went wrong upstream. It decides the status a caller
// reports, whether a retry may help and whether a stale answer may stand in.
type Kind int

const (
	KindNotFound    Kind = iota // the service says the resource does not exist
	KindRefused                 // 401/403: the credentials were refused
	KindThrottled               // 429 after the retries
	KindServer                  // 5xx after the retries
	KindBadResponse             // an answer that cannot be used: 3xx, malformed, oversized, mismatched...
	KindBroken                  // an answer cut short or corrupt in transit: reset, truncated, bad gzip
	KindUnreachable             // no HTTP answer: refused, reset before headers, TLS
	KindTimeout                 // no answer within the call's deadline
	KindRateLimited             // the client's own rate limit left no slot before the deadline
	KindInternal                // a bug in this client (a recovered panic)
	KindSettling                // no login was made: a password rotation's outcome is being settled
)

// Error is the one error type the client returns. Every string in it is safe
// to show a caller and to log: upstream text is stripped of control
// characters, of every credential the client sent or holds (whole or in
// pieces) and bounded in length before it is stored here.
type Error struct {
	Kind      Kind
	Service   string // "SMS" or "IAM"
	Status    int    // upstream HTTP status, 0 when there was none
	Code      string // error_code (or code) from the body
	Message   string // error_msg (or message) from the body
	RequestID string // X-Request-Id response header (or request_id from the body)
	Detail    string // what went wrong, in our words
	Hint      string // what to check, for refusals
	Attempts  int
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Service)
	b.WriteByte(' ')
	b.WriteString(e.Detail)
	var facts []string
	if e.Status != 0 {
		facts = append(facts, fmt.Sprintf("HTTP %d", e.Status))
	}
	if e.Code != "" {
		facts = append(facts, fmt.Sprintf("error_code %q", e.Code))
	}
	if e.Message != "" {
		facts = append(facts, fmt.Sprintf("error_msg %q", e.Message))
	}
	if e.RequestID != "" {
		facts = append(facts, fmt.Sprintf("X-Request-Id %q", e.RequestID))
	}
	if e.Attempts > 1 {
		facts = append(facts, fmt.Sprintf("%d attempts", e.Attempts))
	}
	if len(facts) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(facts, ", "))
		b.WriteByte(')')
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Temporary reports whether the failure may go away by itself: worth a
// retry, and worth serving a stale answer for.
func (e *Error) Temporary() bool {
	switch e.Kind {
	case KindThrottled, KindBroken, KindUnreachable, KindTimeout, KindRateLimited, KindSettling:
		return true
	case KindServer:
		return e.Status != http.StatusNotImplemented
	}
	return false
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
