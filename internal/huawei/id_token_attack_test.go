package huawei

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// IAM's token answer carries a new, valid IAM token in X-Subject-Token. When
// the rest of the answer is unusable (an expires_at the client cannot read,
// one already past) the client refuses it, but the error (a Vault response,
// a log line) and the debug log of the call showed X-Request-Id as IAM sent
// it: an IAM or gateway that quotes the token there (whole or cut to 255
// characters) got it into the read's answer and Vault's log, since only the
// credentials the client holds or sent were redacted, not the one it was
// just given. The agency's securitytokens answer already redacts what it
// carries before it judges the rest; the token answers must too.
func TestAttackIDTokenExchangeAnswerQuotingItsNewTokenIsRedacted(t *testing.T) {
	newToken := "MIIattackNewToken-" + strings.Repeat("Zq9", 100)
	for name, body := range map[string]string{
		"unreadable expires_at": `{"token":{"expires_at":"next tuesday","issued_at":"2026-01-01T00:00:00Z"}}`,
		"already expired":       `{"token":{"expires_at":"2000-01-01T00:00:00Z"}}`,
		"unreadable body":       `{"token":`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Subject-Token", newToken)
				w.Header().Set("X-Request-Id", newToken)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			logs := &syncBuffer{}
			logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
			c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodIDToken, IDPID: "idp",
				IDToken: func(context.Context) (Secret, error) {
					return "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWF0dGFjaw", nil
				},
				Timeout: 5 * time.Second, MaxRetries: 0, Logger: logger})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Passphrase(context.Background(), "task-1")
			require.Error(t, err)
			for _, text := range []string{err.Error(), logs.String()} {
				require.NotContains(t, text, newToken[:20], "the IAM token issued by the answer is quoted")
				require.NotContains(t, text, "Zq9Zq9Zq9", "a piece of the IAM token issued by the answer is quoted")
			}
		})
	}
}
