package sms

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// token.user.password_expires_at is shown in the config read, and a password
// that expires within 7 days with no scheduled rotation before is warned of
// on config reads, on rotate-root and in the log.
func TestPasswordExpiryIsShownAndWarnedOf(t *testing.T) {
	var expires time.Time
	env, _ := newRotationEnv(t, func(o *smsfake.Options) {
		expires = o.Now().Add(3 * 24 * time.Hour).Truncate(time.Second)
		o.Users[0].PasswordExpires = expires
	})
	env.configurePassword(nil)
	cfg, status, msg := env.read("config")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "", cfg.Data["password_expires_at"], "no token has said yet")

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	cfg, _, _ = env.read("config")
	require.Equal(t, expires.UTC().Format(time.RFC3339), cfg.Data["password_expires_at"])
	require.Contains(t, strings.Join(cfg.Warnings, " "), "expires at "+expires.UTC().Format(time.RFC3339))
	require.Contains(t, env.logs.String(), "password expires soon")

	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.Contains(t, strings.Join(resp.Warnings, " "), "less than 7 days from now", "the new password expires as soon (the stand-in keeps the date)")

	// A schedule that rotates before then: no warning.
	status, msg = env.write("config", map[string]any{"rotation_period": "24h"})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	cfg, _, _ = env.read("config")
	require.Equal(t, expires.UTC().Format(time.RFC3339), cfg.Data["password_expires_at"])
	require.Empty(t, cfg.Warnings)
}

// A password that never expires (an empty password_expires_at) is shown as
// empty and warned of nowhere.
func TestPasswordThatNeverExpires(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(nil)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	cfg, _, _ := env.read("config")
	require.Equal(t, "", cfg.Data["password_expires_at"])
	require.Empty(t, cfg.Warnings)
}
