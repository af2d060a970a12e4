package sms

// Attack tests from the adversarial review of issue 17, defect 8: each
// fails on the change it reviews.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// What IAM says of access keys is made Printable as it is decoded
// (internal/huawei/text.go), but never redacted: an IAM that quotes the
// engine's secret key back as the access key id of a second key has it
// repeated, whole, in rotate-root's 400 ("delete the one the engine does not
// use (...)"). Error texts from the same IAM are redacted of it.
func TestAttackAccessKeyListIsNotRedacted(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	iam := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/v3.0/OS-CREDENTIAL/credentials/") {
			_, _ = io.WriteString(w, `{"credential":{"access":"`+testAccessKey+`","user_id":"u1","status":"active"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"credentials":[{"access":"`+testAccessKey+`","user_id":"u1"},`+
			`{"access":"`+testSecretKey+`","user_id":"u1"}]}`)
	}))
	defer iam.Close()
	env.configureAccessKey(map[string]any{"iam_endpoint": iam.URL})
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, msg, "already has 2 access keys")
	assertNoSecrets(t, msg, testSecretKey)
}
