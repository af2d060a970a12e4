package sms

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
)

// failure classifies what went wrong upstream; it decides the status a Vault
// client sees, whether a retry may help and whether a stale entry may be served.
type failure int

const (
	failNotFound    failure = iota // SMS says the task does not exist
	failRefused                    // 401/403: credentials refused
	failThrottled                  // 429 after the retries
	failServer                     // 5xx after the retries
	failBadResponse                // an answer we cannot use (3xx, malformed, oversized, mismatched...)
	failUnreachable                // no HTTP answer: refused, reset, TLS
	failTimeout                    // no answer within request_timeout
	failRateLimited                // max_upstream_rps left no slot before the deadline
)

// upstreamError is the one error type the client returns. Every string in it
// is safe to show a Vault client: upstream text is sanitised and scrubbed of
// the configured credentials before it is stored here.
type upstreamError struct {
	kind      failure
	service   string // "SMS" or "IAM"
	status    int    // upstream HTTP status, 0 when there was none
	code      string // error_code (or code) from the body
	message   string // error_msg (or message) from the body
	requestID string // X-Request-Id response header (or request_id from the body)
	detail    string // what went wrong, in our words
	attempts  int
}

func (e *upstreamError) Error() string {
	var b strings.Builder
	b.WriteString(e.service)
	b.WriteByte(' ')
	b.WriteString(e.detail)
	var facts []string
	if e.status != 0 {
		facts = append(facts, fmt.Sprintf("HTTP %d", e.status))
	}
	if e.code != "" {
		facts = append(facts, fmt.Sprintf("error_code %q", e.code))
	}
	if e.message != "" {
		facts = append(facts, fmt.Sprintf("error_msg %q", e.message))
	}
	if e.requestID != "" {
		facts = append(facts, fmt.Sprintf("X-Request-Id %q", e.requestID))
	}
	if e.attempts > 1 {
		facts = append(facts, fmt.Sprintf("%d attempts", e.attempts))
	}
	if len(facts) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(facts, ", "))
		b.WriteByte(')')
	}
	if e.kind == failRefused && e.service == "SMS" {
		b.WriteString("; check the credentials in the engine's config and that they hold the IAM permission sms:server:getTaskPassphrase")
	}
	return b.String()
}

// retryable reports whether the failure is transient: worth a retry, and
// worth serving a stale entry for (stale_if_error).
func (e *upstreamError) retryable() bool {
	switch e.kind {
	case failThrottled, failUnreachable, failTimeout, failRateLimited:
		return true
	case failServer:
		return e.status != http.StatusNotImplemented
	}
	return false
}

// httpStatus is what a Vault client sees. Refusals are 502, never 403: a Vault
// client must not mistake SMS's refusal for its own ACL denial.
func (e *upstreamError) httpStatus() int {
	switch e.kind {
	case failNotFound:
		return http.StatusNotFound
	case failTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// vaultError converts err for the plugin boundary. CodedError keeps its status
// across gRPC; a wrapped error would become a 500.
func vaultError(err error) error {
	if ue, ok := err.(*upstreamError); ok {
		return logical.CodedError(ue.httpStatus(), ue.Error())
	}
	return err
}

// maxUpstreamText bounds how much of an upstream-provided string we repeat.
const maxUpstreamText = 255

// sanitize makes upstream-provided text fit for a log line or an error
// message: no control characters, bounded length, no configured credential.
func sanitize(s string, scrub *strings.Replacer) string {
	if scrub != nil {
		s = scrub.Replace(s)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxUpstreamText {
		cut := maxUpstreamText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// newScrubber replaces each secret with a placeholder. Secrets shorter than
// four characters are left alone: replacing them would garble ordinary text,
// and no real Huawei credential is that short.
func newScrubber(secrets []string) *strings.Replacer {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, "<redacted>")
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return strings.NewReplacer(pairs...)
}
