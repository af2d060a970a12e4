package sms

// Attack tests from the adversarial review of issue 17, defect 8: each
// fails on the change it reviews.

import (
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Redaction skips hidden characters but not U+FFFD, and cleaning, after it,
// writes U+FFFD for every hidden character and broken byte (see
// internal/huawei TestAttackCleaningReassemblesACredentialAroundUFFFD). That
// rebuilds a credential that holds U+FFFD or a hidden character. Huawei IAM
// passwords are printable ASCII, yet sms/config accepts a password holding a
// format character (checkPrintable refuses only controls and U+FFFD), and a
// password_policy may hand rotate-root one holding U+FFFD or a hidden
// character (checkHuaweiPassword looks only at length and classes).
func TestAttackCredentialsMayHoldWhatCleaningRewrites(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	status, msg := env.write("config", map[string]any{
		"endpoint": env.srv.URL, "iam_endpoint": env.srv.URL,
		"username": testUser, "password": "Ab1\u200bcd2!-pass", "domain_name": testDomain,
	})
	require.Equal(t, http.StatusBadRequest, status, "sms/config took a password holding U+200B: %s", msg)

	env.b.System().(*logical.StaticSystemView).PasswordPolicies = map[string]logical.PasswordGenerator{
		"odd": func() (string, error) { return "Ab1\uFFFDcd2!\u202e-Xy", nil },
	}
	env.configurePassword(map[string]any{"password_policy": "odd"})
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status, "rotate-root used a password holding U+FFFD and U+202E: %s", msg)
}
