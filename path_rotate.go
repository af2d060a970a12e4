package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

const (
	walKindAccessKey = "access_key_rotation"
	walKindPassword  = "password_rotation"
	// walRollbackMinAge is how old a rotation's write-ahead log entry must
	// be before Vault's rollback (about once a minute) treats it as left by
	// a crash. It can be short: a rotation ends within rotationBound +
	// cleanupBound, well before its entry is this old, so a rollback never
	// undoes a rotation still running, on any node (and on this node it
	// waits for configMu, which a rotation holds from start to end).
	walRollbackMinAge = time.Minute
	// rotationBound bounds a rotation's work up to storing the new
	// credential; cleanupBound what follows (storing, deleting the old key,
	// or undoing a failed step), which a caller that goes away does not
	// interrupt. Together well under Vault's request timeout (90 s by
	// default) and walRollbackMinAge.
	rotationBound = 35 * time.Second
	cleanupBound  = 10 * time.Second
	// keyCheckBound bounds the retries of the check that a new key works:
	// IAM may take a few seconds to accept it.
	keyCheckBound = 25 * time.Second
	keyCheckEvery = time.Second
	// A read whose credential was refused is retried with the rotated one
	// at most this many times (rotations in quick succession).
	maxRotationRetries = 3
	// The engine's generator makes passwords of the most characters IAM
	// allows, so that every account's minimum length is met.
	generatedPasswordLength = 32
	// A failed scheduled rotation is tried again after this, doubling up to
	// maxRotationBackoff: never a hot loop against IAM.
	firstRotationBackoff = time.Minute
	maxRotationBackoff   = time.Hour
	rotationKeyMarker    = "vault-plugin-secrets-sms rotation "
)

func pathRotateRoot(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "config/rotate-root",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationVerb: "rotate", OperationSuffix: "root"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathRotateRoot,
				Summary:  "Replace the configured access key or IAM password with one only Vault knows.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"access_key":  {Type: framework.TypeString, Description: "The new access key ID (access_key method); never the secret key."},
						"rotated_at":  {Type: framework.TypeString, Description: "When the rotation was stored (RFC 3339)."},
						"auth_method": {Type: framework.TypeString, Description: "access_key or password."},
					}}},
				},
			},
		},
		HelpSynopsis: "Rotate the root credential: a new access key, or a new IAM password, that only Vault knows.",
		HelpDescription: `
access_key method: finds the IAM user that owns the configured key, creates a
new permanent key for it, checks that the key works, stores it and deletes the
old key. password method: changes the IAM user's password to one from
password_policy (or the engine's generator), stores it and drops the current
token. A token, or an access key with a security_token, cannot be rotated.
Every step is recorded in Vault's write-ahead log first: a crash between
creating a key and storing it is rolled back. Reads are not interrupted and
nothing cached is flushed. rotation_period in the config schedules it.`,
	}}
}

// rotationResult is what a rotation did.
type rotationResult struct {
	method    string
	accessKey string
	at        time.Time
	warnings  []string // what was left behind upstream, for an operator to clean up
}

// rotationError says which step failed and what, if anything, was left
// behind upstream. Its text is safe to show: it holds no secret.
type rotationError struct {
	status int // 400 when nothing could be rotated, else 502
	step   string
	err    error
	left   string
}

// stepFailed is a rotation that failed upstream (502) at step.
func stepFailed(step string, err error, left string) error {
	return &rotationError{status: http.StatusBadGateway, step: step, err: err, left: left}
}

func (e *rotationError) Error() string {
	msg := "rotation failed at step \"" + e.step + "\""
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	if e.left != "" {
		msg += "; " + e.left
	}
	return msg
}

func (b *backend) pathRotateRoot(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	res, err := b.rotateRoot(ctx, req.Storage, false)
	if err != nil {
		var re *rotationError
		if errors.As(err, &re) {
			if re.status == http.StatusBadRequest {
				return logical.ErrorResponse(re.Error()), nil
			}
			return nil, logical.CodedError(re.status, re.Error())
		}
		return nil, err
	}
	data := map[string]any{"auth_method": res.method, "rotated_at": res.at.UTC().Format(time.RFC3339)}
	if res.accessKey != "" {
		data["access_key"] = res.accessKey
	}
	return &logical.Response{Data: data, Warnings: res.warnings}, nil
}

// rotateRoot rotates the configured credential. One rotation (or config
// write) at a time. A scheduled rotation that finds, once it holds the lock,
// that the credential is no longer due (another rotation ran while it
// waited) does nothing and returns nil, nil.
func (b *backend) rotateRoot(ctx context.Context, s logical.Storage, scheduled bool) (*rotationResult, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	defer b.rotation.start()()
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, &rotationError{status: http.StatusBadRequest, step: "read the config", err: errors.New("the engine is not configured")}
	}
	if scheduled {
		if due := cfg.rotationDue(); due.IsZero() || b.now().Before(due) {
			return nil, nil
		}
	}
	// cleanup outlives the caller (a rotation half done is finished or
	// undone, whoever goes away) but not the bound.
	cleanup, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), rotationBound+cleanupBound)
	defer cancelCleanup()
	ctx, cancel := context.WithTimeout(ctx, rotationBound)
	defer cancel()
	switch cfg.authMethod() {
	case authMethodAccessKey:
		if cfg.SecurityToken != "" {
			return nil, &rotationError{status: http.StatusBadRequest, step: "choose what to rotate", err: errors.New(
				"temporary credentials (an access key with a security_token) cannot be rotated: IAM issues them for a limited time " +
					"and they expire on their own; configure a permanent access key or the password method")}
		}
		return b.rotateAccessKey(ctx, cleanup, s, cfg)
	case authMethodPassword:
		return b.rotatePassword(ctx, cleanup, s, cfg)
	default:
		return nil, &rotationError{status: http.StatusBadRequest, step: "choose what to rotate", err: errors.New(
			"a static token cannot be rotated: IAM issues tokens for a user and they expire within 24 hours; " +
				"configure the access_key or password method to let the engine hold a credential only Vault knows")}
	}
}

// rotationClient is a client for the stored config; rotation calls IAM
// with the credentials the engine uses now.
func (b *backend) rotationClient(ctx context.Context, s logical.Storage) (*huawei.Client, error) {
	conn, err := b.connection(ctx, s)
	if err != nil || conn == nil {
		return nil, &rotationError{status: http.StatusBadGateway, step: "build a client", err: err}
	}
	return conn.client, nil
}

type accessKeyWAL struct {
	UserID       string `mapstructure:"user_id" json:"user_id"`
	OldAccessKey string `mapstructure:"old_access_key" json:"old_access_key"`
	Marker       string `mapstructure:"marker" json:"marker"`
}

// rotateAccessKey does the work under ctx and what must not be left half
// done (storing, deleting the old key, undoing) under cleanup.
func (b *backend) rotateAccessKey(ctx, cleanup context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	owner, err := client.ShowAccessKey(ctx, cfg.AccessKey)
	if err != nil {
		return nil, stepFailed("find the IAM user that owns access_key", err, "nothing was changed")
	}
	keys, err := client.ListAccessKeys(ctx, owner.UserID)
	if err != nil {
		return nil, stepFailed("list the IAM user's access keys", err, "nothing was changed")
	}
	if len(keys) >= 2 {
		var others []string
		for _, k := range keys {
			if k.Access != cfg.AccessKey {
				others = append(others, k.Access)
			}
		}
		return nil, &rotationError{status: http.StatusBadRequest, step: "check the IAM user's key count", err: fmt.Errorf(
			"the IAM user already has %d access keys, the most IAM allows: delete the one the engine does not use (%s) and rotate again",
			len(keys), strings.Join(others, ", ")), left: "nothing was changed"}
	}

	// The marker, in the new key's description, lets a rollback find the
	// key even when IAM created it and its answer was lost.
	wal := accessKeyWAL{UserID: owner.UserID, OldAccessKey: cfg.AccessKey, Marker: randomHex(8)}
	walID, err := framework.PutWAL(ctx, s, walKindAccessKey, &wal)
	if err != nil {
		return nil, stepFailed("record the rotation in the write-ahead log", err, "nothing was changed")
	}
	newAccess, newSecret, err := client.CreateAccessKey(ctx, owner.UserID, rotationKeyMarker+wal.Marker)
	if err != nil {
		left := "no key was created"
		if isRefusal(err) || badRequest(err) {
			_ = framework.DeleteWAL(cleanup, s, walID)
		} else {
			// IAM may have created the key and lost its answer.
			left = b.undoAccessKey(cleanup, s, walID, wal, "")
		}
		if strings.Contains(err.Error(), huawei.ErrKeyLimit) {
			return nil, &rotationError{status: http.StatusBadRequest, step: "create a new access key", err: err, left: left}
		}
		return nil, stepFailed("create a new access key", err, left)
	}

	next := cfg.clone()
	next.AccessKey, next.SecretKey = newAccess, secret(newSecret)
	if err := b.checkNewKey(ctx, next); err != nil {
		return nil, stepFailed("check that the new access key works", err, b.undoAccessKey(cleanup, s, walID, wal, newAccess))
	}
	next.LastRotated, next.Rotations = b.now().UTC(), cfg.Rotations+1
	if err := storeConfig(cleanup, s, next); err != nil {
		return nil, stepFailed("store the new access key", err, b.undoAccessKey(cleanup, s, walID, wal, newAccess))
	}
	if _, err := b.swapConnection(next, s, nil); err != nil {
		b.dropConnection() // the next read builds it from storage
	}
	res := &rotationResult{method: authMethodAccessKey, accessKey: newAccess, at: next.LastRotated}
	// The old key goes last, with the new one: until now it kept working.
	// The log entry stays until the old key is gone, so that if deleting it
	// fails, or the process dies first, the rollback deletes it.
	if left := b.deleteReplacedKey(cleanup, s, owner.UserID, cfg.AccessKey); left != "" {
		res.warnings = append(res.warnings, left)
	} else if err := framework.DeleteWAL(cleanup, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its write-ahead log entry; the rollback will find nothing to undo", "error", err.Error())
	}
	b.logger.Info("root credential rotated", "auth_method", authMethodAccessKey, "access_key", newAccess)
	return res, nil
}

// deleteReplacedKey deletes the key a rotation replaced, with the new one,
// and checks that IAM no longer lists it. It returns "" when the key is
// gone, or else a warning for the operator.
func (b *backend) deleteReplacedKey(ctx context.Context, s logical.Storage, userID, old string) string {
	retry := fmt.Sprintf("the engine tries again within %s (write-ahead log rollback), or delete it in IAM", walRollbackMinAge+time.Minute)
	client, err := b.rotationClient(ctx, s)
	if err == nil {
		err = client.DeleteAccessKey(ctx, old)
	}
	if err != nil {
		return fmt.Sprintf("the new key is stored and in use, but deleting the old key %s failed (%v): %s", old, err, retry)
	}
	keys, err := client.ListAccessKeys(ctx, userID)
	if err != nil {
		b.logger.Warn("rotation: could not check that IAM deleted the old access key; the rollback checks again",
			"access_key", old, "error", err.Error())
		return fmt.Sprintf("the new key is stored and in use, and IAM accepted the deletion of the old key %s, "+
			"but listing the user's keys to confirm it failed (%v): %s", old, err, retry)
	}
	for _, k := range keys {
		if k.Access == old {
			return fmt.Sprintf("the new key is stored and in use, and IAM accepted the deletion of the old key %s but still lists it: %s", old, retry)
		}
	}
	return ""
}

// checkNewKey calls IAM with the new key until it works (IAM may take a few
// seconds to accept a new key), within keyCheckBound.
func (b *backend) checkNewKey(ctx context.Context, cfg *smsConfig) error {
	client, err := newClient(cfg, nil, b.now, b.logger)
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(b.keyCheck)
	for {
		_, err := client.ShowAccessKey(ctx, cfg.AccessKey)
		if err == nil || !isRefusal(err) || time.Now().Add(keyCheckEvery).After(deadline) {
			return err
		}
		select {
		case <-time.After(keyCheckEvery):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// undoAccessKey deletes what a failed rotation created (the key it knows,
// or any key with its marker), with the credentials still configured, and
// says what was left behind. The write-ahead log entry stays when the undo
// fails: the rollback tries again.
func (b *backend) undoAccessKey(ctx context.Context, s logical.Storage, walID string, wal accessKeyWAL, created string) string {
	res, err := b.rollbackAccessKey(ctx, s, wal)
	if err != nil {
		what := "a key IAM may have created for this rotation"
		if created != "" {
			what = "the new key " + created
		}
		return fmt.Sprintf("%s could not be deleted (%v); the engine tries again within %s (write-ahead log rollback), or delete it in IAM",
			what, err, walRollbackMinAge+time.Minute)
	}
	_ = framework.DeleteWAL(ctx, s, walID)
	// Say what the rollback found and did, not what was meant.
	deleted := "nothing"
	if len(res.deleted) > 0 {
		deleted = strings.Join(res.deleted, ", ")
	}
	switch {
	case created != "" && res.configured == created:
		return fmt.Sprintf("the store reported an error, yet the new key %s is stored and in use; deleted in IAM: %s", created, deleted)
	case created != "" && slices.Contains(res.deleted, created) && len(res.deleted) == 1:
		return "the new key " + created + " was deleted; the configured key is unchanged"
	case len(res.deleted) > 0:
		return fmt.Sprintf("the key(s) IAM created for this rotation were deleted (%s); the configured key is unchanged", deleted)
	}
	return "nothing was left behind; the configured key is unchanged"
}

// rollbackResult is what a rollback found and did.
type rollbackResult struct {
	configured string   // the access key the stored config holds
	deleted    []string // the keys it deleted
}

// rollbackAccessKey brings IAM in line with the stored config after a
// rotation that did not finish: it deletes every key with the rotation's
// marker that the config does not use and, when the config holds the new
// key, the old key. It never deletes the key the config holds, and signs
// with it.
func (b *backend) rollbackAccessKey(ctx context.Context, s logical.Storage, wal accessKeyWAL) (rollbackResult, error) {
	var res rollbackResult
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return res, err
	}
	if cfg == nil || cfg.authMethod() != authMethodAccessKey {
		// No key to sign with, and none the config could lose: what the
		// rotation left can only be named, for a person to delete.
		b.logger.Warn("rotation rollback: the config was deleted or no longer holds an access key, so the engine cannot clean up; "+
			"in IAM, delete any access key of this user whose description holds the marker, and the old key if it still exists",
			"iam_user_id", wal.UserID, "marker", rotationKeyMarker+wal.Marker, "old_access_key", wal.OldAccessKey)
		return res, nil
	}
	res.configured = cfg.AccessKey
	client, err := newClient(cfg, nil, b.now, b.logger)
	if err != nil {
		return res, err
	}
	defer client.Close()
	keys, err := client.ListAccessKeys(ctx, wal.UserID)
	if err != nil {
		return res, err
	}
	for _, k := range keys {
		stray := strings.Contains(k.Description, rotationKeyMarker+wal.Marker)
		replaced := k.Access == wal.OldAccessKey && cfg.AccessKey != wal.OldAccessKey
		if k.Access == cfg.AccessKey || (!stray && !replaced) {
			continue
		}
		if err := client.DeleteAccessKey(ctx, k.Access); err != nil {
			return res, err
		}
		res.deleted = append(res.deleted, k.Access)
		b.logger.Info("rotation rollback: deleted an access key the config does not use", "access_key", k.Access)
	}
	// This node may still sign with a key the rollback just deleted.
	if conn := b.conn.Load(); conn != nil && conn.cfg.Generation == cfg.Generation && !sameCredentials(conn.cfg, cfg) {
		if _, err := b.swapConnection(cfg, s, conn); err != nil {
			b.dropConnection()
		}
	}
	return res, nil
}

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

// pendingWAL reports whether the write-ahead log holds an entry of kind.
func pendingWAL(ctx context.Context, s logical.Storage, kind string) (bool, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		e, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return false, err
		}
		if e != nil && e.Kind == kind {
			return true, nil
		}
	}
	return false, nil
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

// walRollback is called by Vault for write-ahead log entries older than
// walRollbackMinAge: rotations a crash interrupted.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if !b.writeSafe() {
		// A performance standby or secondary: its view of the config may
		// lag, and only the node that rotates may undo. The entry stays.
		return logical.ErrReadOnly
	}
	switch kind {
	case walKindAccessKey:
		var wal accessKeyWAL
		if err := mapstructure.Decode(data, &wal); err != nil {
			return err
		}
		b.configMu.Lock()
		defer b.configMu.Unlock()
		_, err := b.rollbackAccessKey(ctx, req.Storage, wal)
		return err
	case walKindPassword:
		var wal passwordWAL
		if err := mapstructure.Decode(data, &wal); err != nil {
			return err
		}
		return b.rollbackPassword(ctx, req.Storage, wal)
	}
	return nil // an unknown kind: nothing this version can undo
}

func isRefusal(err error) bool {
	var e *huawei.Error
	return errors.As(err, &e) && e.Kind == huawei.KindRefused
}

// answerLost reports whether a call's outcome is unknown: no complete
// answer arrived (reset, cut short, timed out), as opposed to an answer
// with an error status, which means IAM did not do it.
func answerLost(err error) bool {
	var e *huawei.Error
	if !errors.As(err, &e) {
		return true
	}
	switch e.Kind {
	case huawei.KindBroken, huawei.KindUnreachable, huawei.KindTimeout, huawei.KindInternal:
		return true
	}
	return false
}

func badRequest(err error) bool {
	var e *huawei.Error
	return errors.As(err, &e) && e.Status == http.StatusBadRequest
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// newPassword draws a new IAM password from the configured Vault password
// policy, or else from the engine's own generator.
func (b *backend) newPassword(ctx context.Context, cfg *smsConfig) (string, error) {
	if cfg.PasswordPolicy != "" {
		pw, err := b.System().GeneratePasswordFromPolicy(ctx, cfg.PasswordPolicy)
		if err != nil {
			return "", fmt.Errorf("password_policy %q: %w", cfg.PasswordPolicy, err)
		}
		if err := checkHuaweiPassword(pw, cfg.Username, string(cfg.Password)); err != "" {
			return "", fmt.Errorf("password_policy %q produced a password IAM would refuse: %s", cfg.PasswordPolicy, err)
		}
		return pw, nil
	}
	for {
		pw := generatePassword(generatedPasswordLength)
		if checkHuaweiPassword(pw, cfg.Username, string(cfg.Password)) == "" {
			return pw, nil
		}
	}
}

// Character classes of the engine's generator; the specials are ones no
// shell, JSON or URL quoting trips over.
const (
	upperChars   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	lowerChars   = "abcdefghijkmnopqrstuvwxyz"
	digitChars   = "23456789"
	specialChars = "!#%+,-.:=@^_~"
)

// generatePassword returns n characters from crypto/rand with at least one
// of each class, so that every account password policy (2 to 4 classes)
// accepts it, and no character twice in a row (policies can limit
// consecutive identical characters). Drawn uniformly and redrawn until both
// hold, which takes about two draws at 32 characters.
func generatePassword(n int) string {
	classes := []string{upperChars, lowerChars, digitChars, specialChars}
	all := strings.Join(classes, "")
	max := big.NewInt(int64(len(all)))
	out := make([]byte, n)
	for {
		for i := range out {
			j, err := rand.Int(rand.Reader, max)
			if err != nil {
				panic(err) // crypto/rand does not fail on supported platforms
			}
			out[i] = all[j.Int64()]
		}
		ok := true
		for i := 1; i < n && ok; i++ {
			ok = out[i] != out[i-1]
		}
		for _, set := range classes {
			ok = ok && strings.ContainsAny(string(out), set)
		}
		if ok {
			return string(out)
		}
	}
}

// checkHuaweiPassword applies IAM's rules (the reference's): 6 to 32
// characters, at least two classes, not the user name or it reversed, not
// the current password. It returns what is wrong, or "".
func checkHuaweiPassword(pw, username, current string) string {
	if len(pw) < 6 || len(pw) > 32 {
		return "IAM passwords are 6 to 32 characters"
	}
	if huawei.HoldsHidden(pw) {
		return "it holds a control, format or other hidden character, U+FFFD or bytes that are not UTF-8, which no IAM password holds"
	}
	var classes int
	for _, set := range []func(rune) bool{
		func(r rune) bool { return r >= 'A' && r <= 'Z' },
		func(r rune) bool { return r >= 'a' && r <= 'z' },
		func(r rune) bool { return r >= '0' && r <= '9' },
		func(r rune) bool { return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') },
	} {
		if strings.ContainsFunc(pw, set) {
			classes++
		}
	}
	if classes < 2 {
		return "IAM passwords mix at least two of upper-case, lower-case, digits and special characters"
	}
	lower, user := strings.ToLower(pw), strings.ToLower(username)
	if user != "" && (strings.Contains(lower, user) || strings.Contains(lower, reverse(user))) {
		return "IAM passwords must not contain the user name or the user name reversed"
	}
	if pw == current {
		return "IAM passwords must differ from the current one"
	}
	return ""
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// rotationState is the schedule's memory on this node (when to try again
// after a failure, why the last attempt failed) and the rotation running now.
type rotationState struct {
	mu      sync.Mutex
	retryAt time.Time
	backoff time.Duration
	lastErr string
	done    chan struct{} // closed when the running rotation ends; nil when none runs
}

// start marks a rotation running; the returned function marks it ended.
func (r *rotationState) start() func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := make(chan struct{})
	r.done = done
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		close(done)
		r.done = nil
	}
}

// running returns a channel closed when the running rotation ends, or nil.
func (r *rotationState) running() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return nil
	}
	return r.done
}

// clear forgets the schedule's failures: new credentials get a fresh start.
func (r *rotationState) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retryAt, r.backoff, r.lastErr = time.Time{}, 0, ""
}

func (r *rotationState) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// rotateIfDue rotates the root credential when rotation_period says so. It
// runs from Vault's periodic function, on the active node only; after a
// failure it waits a backoff before trying again.
func (b *backend) rotateIfDue(ctx context.Context, s logical.Storage) {
	if !b.writeSafe() {
		return // the node that writes this mount's storage rotates; the config reaches this one
	}
	cfg, err := loadConfig(ctx, s)
	if err != nil || cfg == nil {
		return
	}
	due := cfg.rotationDue()
	now := b.now()
	if due.IsZero() || now.Before(due) {
		return
	}
	b.rotation.mu.Lock()
	if now.Before(b.rotation.retryAt) {
		b.rotation.mu.Unlock()
		return
	}
	b.rotation.mu.Unlock()

	res, err := b.rotateRoot(ctx, s, true)

	b.rotation.mu.Lock()
	defer b.rotation.mu.Unlock()
	if err != nil {
		if b.rotation.backoff == 0 {
			b.rotation.backoff = firstRotationBackoff
		} else {
			b.rotation.backoff = min(2*b.rotation.backoff, maxRotationBackoff)
		}
		b.rotation.retryAt = b.now().Add(b.rotation.backoff)
		b.rotation.lastErr = err.Error()
		b.logger.Error("scheduled root-credential rotation failed; it is tried again after a backoff",
			"backoff", b.rotation.backoff.String(), "error", err.Error())
		return
	}
	b.rotation.backoff, b.rotation.retryAt, b.rotation.lastErr = 0, time.Time{}, ""
	if res == nil {
		return // rotated meanwhile, by another caller
	}
	for _, w := range res.warnings {
		b.logger.Warn("scheduled root-credential rotation", "warning", w)
	}
}

// writeSafe reports whether this node may write the mount's storage and
// act upstream on its behalf: not a performance standby or secondary (the
// SDK's rule; a local mount on a secondary is its own).
func (b *backend) writeSafe() bool {
	if b.System() == nil {
		return true
	}
	return b.WriteSafeReplicationState()
}

// withRetryOnRotation runs call with the read's client and, when the
// upstream refused that client's credential and a rotation has since
// replaced it, again with the new one: a read in flight during a rotation
// (or several in quick succession) does not fail because of it.
func (b *backend) withRetryOnRotation(ctx context.Context, conn *connection, call func(*huawei.Client) error) error {
	err := call(conn.client)
	for tries := 0; tries < maxRotationRetries && err != nil && isRefusal(err); tries++ {
		next := b.rotatedConnection(ctx, conn)
		if next == nil {
			return err
		}
		conn = next
		err = call(conn.client)
	}
	return err
}

// rotatedConnection returns the connection that replaced conn after a
// rotation, or nil when there is none: a rotation running on this node is
// waited for; one another node stored is loaded from storage, as its
// Invalidate would.
func (b *backend) rotatedConnection(ctx context.Context, conn *connection) *connection {
	// Between IAM taking a new password (which revokes the old token) and
	// the new connection, nothing works: wait for the rotation to end.
	if done := b.rotation.running(); done != nil {
		t := time.NewTimer(conn.cfg.RequestTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			return nil
		}
	}
	cur := b.conn.Load()
	if cur == conn && conn.storage != nil {
		// A refusal can be about one task, not the credential (an IAM
		// policy on enterprise projects): look in storage at most once a
		// second per connection.
		now := time.Now().UnixNano()
		last := conn.storageChecked.Load()
		if now-last < int64(time.Second) || !conn.storageChecked.CompareAndSwap(last, now) {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, conn.cfg.RequestTimeout)
		defer cancel()
		stored, err := loadConfig(ctx, conn.storage)
		// Only forward: a stored config rotated more often than this one.
		// (After a password that could not be stored, the stored one is
		// older than the one in use.)
		if err != nil || stored == nil || stored.Generation != conn.cfg.Generation || stored.Rotations <= conn.cfg.Rotations {
			return nil
		}
		if cur, err = b.swapConnection(stored, conn.storage, conn); err != nil {
			return nil
		}
	}
	if cur == nil || cur == conn || cur.cfg.Generation != conn.cfg.Generation {
		return nil
	}
	return cur
}

// sameCredentials reports whether two configs hold the same credentials.
func sameCredentials(a, b *smsConfig) bool {
	return a.Token == b.Token && a.AccessKey == b.AccessKey && a.SecretKey == b.SecretKey &&
		a.SecurityToken == b.SecurityToken && a.Username == b.Username && a.Password == b.Password
}
