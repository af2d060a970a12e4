package huawei

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// IAM documents token.user.password_expires_at as UTC
// "YYYY-MM-DDTHH:mm:ss.ssssss" (example 2023-06-28T08:56:33.710000), without
// a zone, as Keystone sends it; the zoned form with Z must keep working too.
// A date the client cannot read is shown as "" and never warned of, so an
// expiring password goes unnoticed.
func TestAttackPasswordExpiresAtInIAMsDocumentedFormats(t *testing.T) {
	expires := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Microsecond)
	for _, layout := range []string{
		"2006-01-02T15:04:05.000000Z", // RFC 3339, with a zone
		"2006-01-02T15:04:05.000000",  // IAM's documented format (what the stand-in sends)
		"2006-01-02T15:04:05",         // IAM's documented example without fraction
	} {
		t.Run(layout, func(t *testing.T) {
			want := expires
			if layout == "2006-01-02T15:04:05" {
				want = expires.Truncate(time.Second)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Subject-Token", "tok-attack-expiry-0123456789")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = fmt.Fprintf(w, `{"token":{"expires_at":%q,"issued_at":%q,"user":{"id":"u-1","name":"bot","password_expires_at":%q}}}`,
					time.Now().UTC().Add(24*time.Hour).Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano),
					expires.Format(layout))
			}))
			defer srv.Close()
			c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodPassword, Username: "bot",
				Password: "pw-attack-expiry-0123456789", DomainName: "d", Timeout: 5 * time.Second, Logger: hclog.NewNullLogger()})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.UserID(context.Background())
			require.NoError(t, err)
			at, ok := c.PasswordExpiresAt()
			require.True(t, ok, "password_expires_at %q is IAM's documented format; the client could not read it", expires.Format(layout))
			require.True(t, want.Equal(at), "read %s, want %s", at, want)
		})
	}
}
