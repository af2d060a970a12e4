package sms

import (
	"fmt"
	"time"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// passwordExpiryWarningWindow is how far ahead an expiring IAM password is
// warned of: long enough for an operator to act on a config read.
const passwordExpiryWarningWindow = 7 * 24 * time.Hour

// passwordExpiresAt is token.user.password_expires_at as the last token of
// the engine's current client for cfg told it: "" when the password never
// expires or no token has told it yet.
func (b *backend) passwordExpiresAt(cfg *smsConfig) (time.Time, *huawei.Client) {
	c := b.conn.Load()
	if c == nil || cfg.authMethod() != authMethodPassword || c.cfg.Generation != cfg.Generation || c.cfg.Password != cfg.Password {
		return time.Time{}, nil
	}
	at, _ := c.client.PasswordExpiresAt()
	return at, c.client
}

// passwordExpiryWarning warns, and logs, when the IAM user's password
// expires within passwordExpiryWarningWindow and no scheduled rotation
// comes before: once it expires, IAM refuses every login with it.
func (b *backend) passwordExpiryWarning(cfg *smsConfig, c *huawei.Client) string {
	if c == nil {
		return ""
	}
	at, ok := c.PasswordExpiresAt()
	if !ok || at.IsZero() || at.Sub(b.now()) >= passwordExpiryWarningWindow {
		return ""
	}
	due := cfg.rotationDue()
	if due.IsZero() || !due.Before(at) {
		b.logger.Warn("the IAM user's password expires soon and no scheduled rotation comes first", "password_expires_at", rfc3339(at))
		return fmt.Sprintf("the IAM user's password expires at %s, less than 7 days from now, and no rotation_period rotates it before then: "+
			"run sms/config/rotate-root, or set rotation_period", rfc3339(at))
	}
	// A schedule that keeps failing, or that is past due (this node may
	// not be the one that rotates, so its last error may be elsewhere),
	// will not rotate it in time by itself.
	lastErr := b.rotation.lastError()
	if lastErr == "" && !b.now().After(due) {
		return ""
	}
	b.logger.Warn("the IAM user's password expires soon and the scheduled rotation has not replaced it",
		"password_expires_at", rfc3339(at), "rotation_due", rfc3339(due))
	why := "was due at " + rfc3339(due) + " and has not happened"
	if lastErr != "" {
		why = "keeps failing (see last_rotation_error)"
	}
	return fmt.Sprintf("the IAM user's password expires at %s, less than 7 days from now, and the scheduled rotation %s: "+
		"fix what stops it and run sms/config/rotate-root", rfc3339(at), why)
}
