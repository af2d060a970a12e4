package sms

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

type passwordWAL struct {
	UserID   string `mapstructure:"user_id" json:"user_id"`
	Password string `mapstructure:"password" json:"password"` // the new one; WAL entries are seal-wrapped like the config
}

// rotatePassword: ctx and cleanup as for rotateAccessKey.
func (b *backend) rotatePassword(ctx, cleanup context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	if pending, err := pendingWAL(ctx, s, walKindPassword); err != nil {
		return nil, stepFailed("read the write-ahead log", err, "nothing was changed")
	} else if pending {
		// Its new password may be IAM's now, and the stored one not: a
		// change sent with the stored one as the original would be refused.
		return nil, &rotationError{status: http.StatusBadRequest, step: "check for an unfinished rotation", err: fmt.Errorf(
			"a previous rotation's new password is not settled yet; the write-ahead log rollback settles it within %s: rotate again after that",
			walRollbackMinAge+time.Minute), left: "nothing was changed"}
	}
	userID, err := client.UserID(ctx)
	if err != nil {
		return nil, stepFailed("learn the IAM user's id from a token", err, "nothing was changed")
	}
	pw, err := b.newPassword(ctx, cfg)
	if err != nil {
		return nil, &rotationError{status: http.StatusBadRequest, step: "generate a new password", err: err, left: "nothing was changed"}
	}
	walID, err := framework.PutWAL(ctx, s, walKindPassword, &passwordWAL{UserID: userID, Password: pw})
	if err != nil {
		return nil, stepFailed("record the rotation in the write-ahead log", err, "nothing was changed")
	}
	// From the change on, IAM refuses the old password: no login with it
	// (each would count towards the user's lockout). The token held keeps
	// reads going until IAM revokes it.
	if err := client.RetireLogins(ctx); err != nil {
		client.ResumeLogins()
		_ = framework.DeleteWAL(cleanup, s, walID)
		return nil, stepFailed("wait for logins in flight", err, "nothing was changed")
	}
	if err := client.ChangePassword(ctx, userID, cfg.Password, secret(pw)); err != nil {
		if !answerLost(err) {
			// IAM answered, with an error: it did not change the password.
			client.ResumeLogins()
			_ = framework.DeleteWAL(cleanup, s, walID)
			return nil, stepFailed("change the IAM user's password", err, "IAM refused the change; the configured password is unchanged")
		}
		// The answer was lost: a login with the new password tells
		// whether IAM took it (one failed login if not, and only here).
		works, probeErr := b.passwordWorks(cleanup, cfg, pw)
		switch {
		case works: // IAM took it: carry on.
		case probeErr == nil:
			client.ResumeLogins()
			_ = framework.DeleteWAL(cleanup, s, walID)
			return nil, stepFailed("change the IAM user's password", err, "IAM did not take the new password; the configured password is unchanged")
		default:
			// Still unknown. No login with the old password either (it may
			// be the wrong one now): the rollback finds out, and stores the
			// new one or resumes with the old.
			return nil, stepFailed("change the IAM user's password", err, fmt.Sprintf(
				"IAM may have changed the password; within %s the write-ahead log rollback finds out and stores the one that works, "+
					"and until then this node makes no new login", walRollbackMinAge+time.Minute))
		}
	}
	next := cfg.clone()
	next.Password, next.LastRotated, next.Rotations = secret(pw), b.now().UTC(), cfg.Rotations+1
	// In use at once, before it is stored: IAM takes no other now. The new
	// client logs in afresh (the change revoked the old token).
	if _, err := b.swapConnection(next, s, nil); err != nil {
		b.dropConnection()
	}
	var storeErr error
	for attempt := 0; attempt < 3; attempt++ {
		if storeErr = storeConfig(cleanup, s, next); storeErr == nil {
			break
		}
	}
	if storeErr != nil {
		return nil, stepFailed("store the new password", storeErr, fmt.Sprintf(
			"IAM has the new password and this node uses it, but it could not be stored: the write-ahead log rollback stores it within %s; "+
				"until then other nodes, or this one after a restart, cannot log in", walRollbackMinAge+time.Minute))
	}
	if err := framework.DeleteWAL(cleanup, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its write-ahead log entry; the rollback will find nothing to undo", "error", err.Error())
	}
	b.logger.Info("root credential rotated", "auth_method", authMethodPassword)
	return &rotationResult{method: authMethodPassword, at: next.LastRotated}, nil
}

// passwordWorks logs in with cfg's user and pw: true when IAM takes it,
// false with a nil error when IAM refuses it, and an error when IAM could
// not say.
func (b *backend) passwordWorks(ctx context.Context, cfg *smsConfig, pw string) (bool, error) {
	candidate := cfg.clone()
	candidate.Password = secret(pw)
	// Its own logger: a refusal here is an answer, not the engine's
	// credentials failing (which its client would log as an error).
	client, err := newClient(candidate, nil, b.now, hclog.NewNullLogger())
	if err != nil {
		return false, err
	}
	defer client.Close()
	if _, err := client.UserID(ctx); err != nil {
		if isRefusal(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// rollbackPassword stores the rotation's new password if IAM has it (it
// logs in with it), and otherwise leaves the config as it is.
func (b *backend) rollbackPassword(ctx context.Context, s logical.Storage, wal passwordWAL) error {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return err
	}
	if cfg == nil || cfg.authMethod() != authMethodPassword || string(cfg.Password) == wal.Password {
		return nil
	}
	works, err := b.passwordWorks(ctx, cfg, wal.Password)
	if err != nil {
		return err
	}
	if !works {
		// IAM never took the new password: the config's stands, and
		// logins with it may resume.
		if c := b.conn.Load(); c != nil {
			c.client.ResumeLogins()
		}
		return nil
	}
	candidate := cfg.clone()
	candidate.Password = secret(wal.Password)
	candidate.LastRotated, candidate.Rotations = b.now().UTC(), cfg.Rotations+1
	if err := storeConfig(ctx, s, candidate); err != nil {
		return err
	}
	if _, err := b.swapConnection(candidate, s, nil); err != nil {
		b.dropConnection()
	}
	b.logger.Info("rotation rollback: stored the password IAM has")
	return nil
}
