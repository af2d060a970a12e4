package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

type passwordWAL struct {
	UserID   string `mapstructure:"user_id" json:"user_id"`
	Password string `mapstructure:"password" json:"password"` // the new one; WAL entries are seal-wrapped like the config
	// Applied: IAM answered that it took the new password (it is not
	// stored yet). Logins with it may go on.
	Applied bool `mapstructure:"applied" json:"applied,omitempty"`
	// Refused holds keyed hashes (HMAC-SHA256 under RefusedKey, both kept
	// only in this seal-wrapped entry) of the passwords a settle's login
	// saw IAM refuse: none is tried again, whichever config write brings
	// it back. RefusedKey is made with the rotation and copied into every
	// entry that replaces its entry, so that entries of one rotation can
	// share what they learned.
	Refused    []string `mapstructure:"refused" json:"refused,omitempty"`
	RefusedKey string   `mapstructure:"refused_key" json:"refused_key,omitempty"`
	// OldRefusedAt is how entries written before Refused recorded a
	// refusal of the stored password: by the CredentialsSetAt of the
	// config it was in. Read, never written.
	OldRefusedAt string `mapstructure:"old_refused_at" json:"old_refused_at,omitempty"`
	// Stuck: IAM refused the rotation's new password too. From then on a
	// settle logs in only with a password an operator writes, once.
	Stuck       bool `mapstructure:"stuck" json:"stuck,omitempty"`
	settleState `mapstructure:",squash"`
}

// rotatePassword: ctx and cleanup as for rotateAccessKey.
func (b *backend) rotatePassword(ctx, cleanup context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	if p, err := pendingOf(ctx, s, walKindPassword); err != nil {
		return nil, stepFailed("read the write-ahead log", err, "nothing was changed")
	} else if p != nil {
		// Its new password may be IAM's now, and the stored one not: a
		// change sent with the stored one as the original would be refused.
		return nil, refuseWhileUnsettled(p)
	}
	userID, err := client.UserID(ctx)
	if err != nil {
		return nil, stepFailed("learn the IAM user's id from a token", err, "nothing was changed")
	}
	pw, err := b.newPassword(ctx, cfg)
	if err != nil {
		return nil, &rotationError{status: http.StatusBadRequest, step: "generate a new password", err: err, left: "nothing was changed"}
	}
	wal := passwordWAL{UserID: userID, Password: pw, RefusedKey: randomHex(32)}
	walID, err := framework.PutWAL(ctx, s, walKindPassword, &wal)
	if err != nil {
		return nil, stepFailed("record the rotation in the write-ahead log", err, "nothing was changed")
	}
	// From the change on, IAM refuses the old password: no login with it
	// (each would count towards the user's lockout). The token held keeps
	// reads going until IAM revokes it. Other clients see the log entry.
	if err := client.RetireLogins(ctx); err != nil {
		client.ResumeLogins()
		_ = framework.DeleteWAL(cleanup, s, walID)
		return nil, stepFailed("wait for logins in flight", err, "nothing was changed")
	}
	const step = "change the IAM user's password"
	if err := client.ChangePassword(ctx, userID, cfg.Password, secret(pw)); err != nil {
		if !outcomeUnknown(err) {
			// IAM answered, with an error: it did not change the password.
			client.ResumeLogins()
			_ = framework.DeleteWAL(cleanup, s, walID)
			return nil, stepFailed(step, err, "IAM refused the change; the configured password is unchanged")
		}
		// No probe now: IAM may apply the change late, and a login that
		// IAM refuses counts towards the lockout. The rollback settles it.
		after := b.unsettle(cleanup, s, walKindPassword, walID, &wal.settleState, &wal, step)
		// The log entry holds logins back now, on every client: its 503
		// says why, and the settle lifts it.
		client.ResumeLogins()
		b.logger.Error("rotation unsettled: IAM may or may not have the new password; no login is made until the write-ahead log rollback settles it",
			"settle_after", after.Format(time.RFC3339), "error", err.Error())
		return nil, stepFailed(step, err, fmt.Sprintf(
			"the answer was lost, so IAM may or may not have changed the password: the rotation is unsettled. The new password is kept, "+
				"seal-wrapped, in the write-ahead log; no node logs in with either password until the rollback settles it, from %s, "+
				"by logging in with the stored password first (and with the new one only if IAM refuses that); reads are served "+
				"from the cache meanwhile, and rotate-root is refused until then",
			after.Format(time.RFC3339)))
	}
	// IAM took it: logins with the new password may go on, on every node,
	// from now (the old token was revoked with the change).
	applied := wal
	applied.Applied = true
	if id, err := framework.PutWAL(cleanup, s, walKindPassword, &applied); err == nil {
		_ = framework.DeleteWAL(cleanup, s, walID)
		walID = id
	}
	next := cfg.clone()
	next.Password, next.LastRotated, next.Rotations = secret(pw), b.now().UTC(), cfg.Rotations+1
	var storeErr error
	for attempt := 0; attempt < 3; attempt++ {
		if storeErr = storeConfig(cleanup, s, next); storeErr == nil {
			break
		}
	}
	// In use on this node whether or not it could be stored: IAM takes no
	// other now. The new client logs in afresh.
	conn, swapErr := b.swapConnection(next, s, nil)
	if swapErr != nil {
		b.dropConnection()
	}
	if storeErr != nil {
		return nil, stepFailed("store the new password", storeErr, fmt.Sprintf(
			"IAM has the new password and this node uses it, but it could not be stored: the write-ahead log rollback stores it within %s; "+
				"until then other nodes, or this one after a restart, log in with it from the log",
			walRollbackMinAge+time.Minute))
	}
	if err := framework.DeleteWAL(cleanup, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its write-ahead log entry; the rollback will find nothing to undo", "error", err.Error())
	}
	b.logger.Info("root credential rotated", "auth_method", authMethodPassword)
	res := &rotationResult{method: authMethodPassword, at: next.LastRotated}
	if swapErr == nil {
		// The login the next read would make, made now: it tells when the
		// new password expires.
		if _, err := conn.client.UserID(cleanup); err == nil {
			if w := b.passwordExpiryWarning(next, conn.client); w != "" {
				res.warnings = append(res.warnings, w)
			}
		}
	}
	return res, nil
}

// passwordWorks logs in with cfg's user and pw: true when IAM takes it,
// false with a nil error when IAM refuses it, and an error when IAM could
// not say.
func (b *backend) passwordWorks(ctx context.Context, cfg *smsConfig, pw string) (bool, error) {
	candidate := cfg.clone()
	candidate.Password = secret(pw)
	// Its own logger: a refusal here is an answer, not the engine's
	// credentials failing (which its client would log as an error).
	client, err := newClient(candidate, nil, b.now, hclog.NewNullLogger(), nil, nil)
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

// errStuck keeps a log entry whose passwords IAM both refused.
var errStuck = errors.New("IAM refused both the stored password and the rotation's new one; write the IAM user's current password to the config")

// settlePassword settles a password rotation by evidence: a login with the
// stored password first (if IAM takes it, nothing changed, and the success
// resets IAM's failure count), and only if IAM refuses that, one with the
// new password, which is then stored. No password IAM refused in a settle
// is tried again (see passwordWAL.Refused): reaching "IAM refused both"
// takes two failed logins in a row, and after that each password an
// operator writes costs at most one. A refusal is written into a new entry
// before the next login. It returns nil when the entry it ran for may go
// (any entry it wrote in its place carries on), or an error to keep it.
func (b *backend) settlePassword(ctx context.Context, s logical.Storage, wal passwordWAL) error {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return err
	}
	if cfg == nil || cfg.authMethod() != authMethodPassword {
		// The entry may hold the only copy of the password IAM now has:
		// it waits for a password config to settle against.
		b.logger.Warn("rotation rollback: a password rotation is unsettled and the config holds no password; the write-ahead log " +
			"entry, which holds the rotation's new password, is kept until a password config for the same IAM user is written")
		return errNoPasswordConfig
	}
	if string(cfg.Password) == wal.Password {
		return nil // stored
	}
	if err := mergeSiblings(ctx, s, &wal); err != nil {
		return err
	}
	if wal.Applied {
		return b.storeSettledPassword(ctx, s, cfg, wal.Password, "rotation rollback: stored the password IAM took")
	}
	if err := b.settleDue(wal.settleState); err != nil {
		return err
	}
	stored := string(cfg.Password)
	legacy := wal.OldRefusedAt != "" && wal.OldRefusedAt == cfg.CredentialsSetAt.UTC().Format(time.RFC3339Nano)
	if wal.wasRefused(stored) || legacy {
		if wal.Stuck {
			return errStuck
		}
		return b.settleNewPassword(ctx, s, cfg, wal, "")
	}
	// The stored password, or one an operator wrote since.
	works, err := b.passwordWorks(ctx, cfg, stored)
	if err != nil {
		return err // no answer: no failed login either; tried again
	}
	if works {
		b.logger.Info("rotation rollback: IAM takes the stored password; the rotation changed nothing and logins resume")
		if c := b.conn.Load(); c != nil {
			c.client.ResumeLogins()
		}
		return nil
	}
	wal.refuse(stored)
	id, err := framework.PutWAL(ctx, s, walKindPassword, &wal)
	if err != nil {
		return err
	}
	if wal.Stuck {
		// IAM refused the new password already: it is not tried again.
		b.logger.Error("rotation rollback: IAM refused the password written to the config too; no login is made until the IAM " +
			"user's current password is written to the config")
		return nil
	}
	// Whatever it says, the entry written in its place carries on.
	_ = b.settleNewPassword(ctx, s, cfg, wal, id)
	return nil
}

// errNoPasswordConfig keeps a password rotation's entry while no config
// holds a password (deleted, or another method written).
var errNoPasswordConfig = errors.New("a password rotation is unsettled and no password config exists to settle it against: " +
	"the write-ahead log entry, which holds the rotation's new password, is kept until one is written")

func (w *passwordWAL) refusedHash(pw string) string {
	m := hmac.New(sha256.New, []byte(w.RefusedKey))
	m.Write([]byte(pw))
	return hex.EncodeToString(m.Sum(nil))
}

// wasRefused reports whether a settle saw IAM refuse pw.
func (w *passwordWAL) wasRefused(pw string) bool {
	return w.RefusedKey != "" && slices.Contains(w.Refused, w.refusedHash(pw))
}

// refuse records that IAM refused pw.
func (w *passwordWAL) refuse(pw string) {
	if w.RefusedKey == "" {
		w.RefusedKey = randomHex(32)
	}
	if !w.wasRefused(pw) {
		w.Refused = append(w.Refused, w.refusedHash(pw))
	}
}

// mergeSiblings adds to wal what other entries of the same rotation
// learned: a settle writes its findings into a new entry before Vault
// deletes the one it ran for, and a crash between the two leaves both.
func mergeSiblings(ctx context.Context, s logical.Storage, wal *passwordWAL) error {
	if wal.RefusedKey == "" {
		return nil
	}
	all, err := pendingRotations(ctx, s)
	if err != nil {
		return err
	}
	for _, p := range all {
		o := p.password
		if o == nil || o.Password != wal.Password || o.RefusedKey != wal.RefusedKey {
			continue
		}
		wal.Applied = wal.Applied || o.Applied
		wal.Stuck = wal.Stuck || o.Stuck
		for _, h := range o.Refused {
			if !slices.Contains(wal.Refused, h) {
				wal.Refused = append(wal.Refused, h)
			}
		}
	}
	return nil
}

// settleNewPassword logs in with the rotation's new password once IAM
// refused the stored one, and stores it if IAM takes it. written is the id
// of an entry this settle wrote (deleted when it is replaced or done), or
// "" when the rollback runs for that entry itself.
func (b *backend) settleNewPassword(ctx context.Context, s logical.Storage, cfg *smsConfig, wal passwordWAL, written string) error {
	works, err := b.passwordWorks(ctx, cfg, wal.Password)
	if err != nil {
		return err
	}
	if !works {
		b.logger.Error("rotation rollback: IAM refused both the stored password and the rotation's new one; no login is made until " +
			"the IAM user's current password is written to the config")
		wal.Stuck = true
		if _, err := framework.PutWAL(ctx, s, walKindPassword, &wal); err != nil {
			return err
		}
		if written != "" {
			_ = framework.DeleteWAL(ctx, s, written)
		}
		return nil
	}
	if err := b.storeSettledPassword(ctx, s, cfg, wal.Password, "rotation rollback: IAM takes the new password; stored it"); err != nil {
		return err
	}
	if written != "" {
		_ = framework.DeleteWAL(ctx, s, written)
	}
	return nil
}

// storeSettledPassword stores pw as the config's password and uses it.
func (b *backend) storeSettledPassword(ctx context.Context, s logical.Storage, cfg *smsConfig, pw, msg string) error {
	candidate := cfg.clone()
	candidate.Password = secret(pw)
	candidate.LastRotated, candidate.Rotations = b.now().UTC(), cfg.Rotations+1
	if err := storeConfig(ctx, s, candidate); err != nil {
		return err
	}
	if _, err := b.swapConnection(candidate, s, nil); err != nil {
		b.dropConnection()
	}
	// The rotation took after all: the schedule's failure and backoff are
	// over, as after any successful rotation.
	b.rotation.clear()
	b.logger.Info(msg)
	return nil
}
