package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

const (
	walKindAccessKey = "access_key_rotation"
	walKindPassword  = "password_rotation"
	// walRollbackMinAge is how old a rotation's write-ahead log entry must
	// be before Vault's rollback (about once a minute) treats it as left by
	// a crash. It can be short: on this node a rollback waits for configMu,
	// which a rotation holds from start to end, so it never undoes a
	// rotation still running; on another node, a rotation can only be
	// running on a node that is gone.
	walRollbackMinAge = time.Minute
	// keyCheckBound bounds the retries of the check that a new key works:
	// IAM may take a few seconds to accept it. Well under Vault's request
	// timeout (90 s by default).
	keyCheckBound = 30 * time.Second
	keyCheckEvery = time.Second
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
	res, err := b.rotateRoot(ctx, req.Storage)
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
// write) at a time.
func (b *backend) rotateRoot(ctx context.Context, s logical.Storage) (*rotationResult, error) {
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
	switch cfg.authMethod() {
	case authMethodAccessKey:
		if cfg.SecurityToken != "" {
			return nil, &rotationError{status: http.StatusBadRequest, step: "choose what to rotate", err: errors.New(
				"temporary credentials (an access key with a security_token) cannot be rotated: IAM issues them for a limited time " +
					"and they expire on their own; configure a permanent access key or the password method")}
		}
		return b.rotateAccessKey(ctx, s, cfg)
	case authMethodPassword:
		return b.rotatePassword(ctx, s, cfg)
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

func (b *backend) rotateAccessKey(ctx context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	fail := func(step string, err error, left string) error {
		return &rotationError{status: http.StatusBadGateway, step: step, err: err, left: left}
	}
	owner, err := client.ShowAccessKey(ctx, cfg.AccessKey)
	if err != nil {
		return nil, fail("find the IAM user that owns access_key", err, "nothing was changed")
	}
	keys, err := client.ListAccessKeys(ctx, owner.UserID)
	if err != nil {
		return nil, fail("list the IAM user's access keys", err, "nothing was changed")
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
		return nil, fail("record the rotation in the write-ahead log", err, "nothing was changed")
	}
	newAccess, newSecret, err := client.CreateAccessKey(ctx, owner.UserID, rotationKeyMarker+wal.Marker)
	if err != nil {
		left := "no key was created"
		if isRefusal(err) || badRequest(err) {
			_ = framework.DeleteWAL(ctx, s, walID)
		} else {
			// IAM may have created the key and lost its answer.
			left = b.undoAccessKey(ctx, s, walID, wal, "")
		}
		if strings.Contains(err.Error(), huawei.ErrKeyLimit) {
			return nil, &rotationError{status: http.StatusBadRequest, step: "create a new access key", err: err, left: left}
		}
		return nil, fail("create a new access key", err, left)
	}

	next := cfg.clone()
	next.AccessKey, next.SecretKey = newAccess, secret(newSecret)
	if err := b.checkNewKey(ctx, next); err != nil {
		return nil, fail("check that the new access key works", err, b.undoAccessKey(ctx, s, walID, wal, newAccess))
	}
	next.LastRotated = b.now().UTC()
	if err := storeConfig(ctx, s, next); err != nil {
		return nil, fail("store the new access key", err, b.undoAccessKey(ctx, s, walID, wal, newAccess))
	}
	if err := b.swapConnection(next); err != nil {
		b.dropConnection() // the next read builds it from storage
	}
	res := &rotationResult{method: authMethodAccessKey, accessKey: newAccess, at: next.LastRotated}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its write-ahead log entry; the rollback will find nothing to undo", "error", err.Error())
	}
	// The old key goes last, with the new one: until now it kept working.
	newClient, err := b.rotationClient(ctx, s)
	if err == nil {
		err = newClient.DeleteAccessKey(ctx, cfg.AccessKey)
	}
	if err != nil {
		res.warnings = append(res.warnings, fmt.Sprintf(
			"the new key is stored and in use, but deleting the old key %s failed (%v): delete it in IAM", cfg.AccessKey, err))
	}
	b.logger.Info("root credential rotated", "auth_method", authMethodAccessKey, "access_key", newAccess)
	return res, nil
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
	if err := b.rollbackAccessKey(ctx, s, wal); err != nil {
		what := "a key IAM may have created for this rotation"
		if created != "" {
			what = "the new key " + created
		}
		return fmt.Sprintf("%s could not be deleted (%v); the engine tries again within %s (write-ahead log rollback), or delete it in IAM",
			what, err, walRollbackMinAge+time.Minute)
	}
	_ = framework.DeleteWAL(ctx, s, walID)
	if created != "" {
		return "the new key " + created + " was deleted; the configured key is unchanged"
	}
	return "nothing was left behind; the configured key is unchanged"
}

// rollbackAccessKey brings IAM in line with the stored config after a
// rotation that did not finish: it deletes every key with the rotation's
// marker that the config does not use and, when the config holds the new
// key, the old key. It never deletes the key the config holds.
func (b *backend) rollbackAccessKey(ctx context.Context, s logical.Storage, wal accessKeyWAL) error {
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return err
	}
	if cfg == nil || cfg.authMethod() != authMethodAccessKey {
		return nil // no key to sign with, and none the config could lose
	}
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return err
	}
	keys, err := client.ListAccessKeys(ctx, wal.UserID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		stray := strings.Contains(k.Description, rotationKeyMarker+wal.Marker)
		replaced := k.Access == wal.OldAccessKey && cfg.AccessKey != wal.OldAccessKey
		if k.Access == cfg.AccessKey || (!stray && !replaced) {
			continue
		}
		if err := client.DeleteAccessKey(ctx, k.Access); err != nil {
			return err
		}
		b.logger.Info("rotation rollback: deleted an access key the config does not use", "access_key", k.Access)
	}
	return nil
}

type passwordWAL struct {
	UserID   string `mapstructure:"user_id" json:"user_id"`
	Password string `mapstructure:"password" json:"password"` // the new one; WAL entries are seal-wrapped like the config
}

func (b *backend) rotatePassword(ctx context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	fail := func(step string, err error, left string) error {
		return &rotationError{status: http.StatusBadGateway, step: step, err: err, left: left}
	}
	userID, err := client.UserID(ctx)
	if err != nil {
		return nil, fail("learn the IAM user's id from a token", err, "nothing was changed")
	}
	pw, err := b.newPassword(ctx, cfg)
	if err != nil {
		return nil, &rotationError{status: http.StatusBadRequest, step: "generate a new password", err: err, left: "nothing was changed"}
	}
	walID, err := framework.PutWAL(ctx, s, walKindPassword, &passwordWAL{UserID: userID, Password: pw})
	if err != nil {
		return nil, fail("record the rotation in the write-ahead log", err, "nothing was changed")
	}
	if err := client.ChangePassword(ctx, userID, cfg.Password, secret(pw)); err != nil {
		if isRefusal(err) || badRequest(err) {
			_ = framework.DeleteWAL(ctx, s, walID)
			return nil, fail("change the IAM user's password", err, "IAM refused the change; the configured password is unchanged")
		}
		// Unknown whether IAM changed it: the rollback finds out (by
		// logging in with the new one) and stores whichever works.
		return nil, fail("change the IAM user's password", err, fmt.Sprintf(
			"IAM may have changed the password; the engine stores the one that works within %s (write-ahead log rollback)",
			walRollbackMinAge+time.Minute))
	}
	next := cfg.clone()
	next.Password, next.LastRotated = secret(pw), b.now().UTC()
	var storeErr error
	for attempt := 0; attempt < 3; attempt++ {
		if storeErr = storeConfig(ctx, s, next); storeErr == nil {
			break
		}
	}
	if storeErr != nil {
		return nil, fail("store the new password", storeErr, fmt.Sprintf(
			"IAM has the new password and the engine could not store it: reads fail until the write-ahead log rollback stores it (within %s)",
			walRollbackMinAge+time.Minute))
	}
	// The new client logs in afresh: the change revoked the old token.
	if err := b.swapConnection(next); err != nil {
		b.dropConnection()
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its write-ahead log entry; the rollback will find nothing to undo", "error", err.Error())
	}
	b.logger.Info("root credential rotated", "auth_method", authMethodPassword)
	return &rotationResult{method: authMethodPassword, at: next.LastRotated}, nil
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
	candidate := cfg.clone()
	candidate.Password = secret(wal.Password)
	client, err := newClient(candidate, nil, b.now, b.logger)
	if err != nil {
		return err
	}
	defer client.Close()
	if _, err := client.UserID(ctx); err != nil {
		if isRefusal(err) {
			return nil // IAM never took the new password: the config's stands
		}
		return err
	}
	candidate.LastRotated = b.now().UTC()
	if err := storeConfig(ctx, s, candidate); err != nil {
		return err
	}
	b.dropConnection()
	b.logger.Info("rotation rollback: stored the password IAM has")
	return nil
}

// walRollback is called by Vault for write-ahead log entries older than
// walRollbackMinAge: rotations a crash interrupted.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	switch kind {
	case walKindAccessKey:
		var wal accessKeyWAL
		if err := mapstructure.Decode(data, &wal); err != nil {
			return err
		}
		b.configMu.Lock()
		defer b.configMu.Unlock()
		return b.rollbackAccessKey(ctx, req.Storage, wal)
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
		pw := generatePassword(24)
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

// generatePassword returns n characters from crypto/rand, at least one of
// each class, so that every account password policy (2 to 4 classes) accepts
// it.
func generatePassword(n int) string {
	classes := []string{upperChars, lowerChars, digitChars, specialChars}
	all := strings.Join(classes, "")
	pick := func(set string) byte {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic(err)
		}
		return set[i.Int64()]
	}
	out := make([]byte, n)
	for i := range out {
		if i < len(classes) {
			out[i] = pick(classes[i])
		} else {
			out[i] = pick(all)
		}
	}
	// Shuffle, so that the classes are not always in front.
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			panic(err)
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out)
}

// checkHuaweiPassword applies IAM's rules (the reference's): 6 to 32
// characters, at least two classes, not the user name or it reversed, not
// the current password. It returns what is wrong, or "".
func checkHuaweiPassword(pw, username, current string) string {
	if len(pw) < 6 || len(pw) > 32 {
		return "IAM passwords are 6 to 32 characters"
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

func (r *rotationState) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// rotateIfDue rotates the root credential when rotation_period says so. It
// runs from Vault's periodic function, on the active node only; after a
// failure it waits a backoff before trying again.
func (b *backend) rotateIfDue(ctx context.Context, s logical.Storage) {
	if sys := b.System(); sys != nil {
		if st := sys.ReplicationState(); st.HasState(consts.ReplicationPerformanceSecondary) || st.HasState(consts.ReplicationPerformanceStandby) {
			return // the primary's active node rotates; its config replicates here
		}
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

	res, err := b.rotateRoot(ctx, s)

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
	for _, w := range res.warnings {
		b.logger.Warn("scheduled root-credential rotation", "warning", w)
	}
}

// withRetryOnRotation runs call with the read's client and, when the
// upstream refused that client's credential and a rotation has since
// replaced the connection, once more with the new one: a read in flight
// during a rotation does not fail because of it.
func (b *backend) withRetryOnRotation(conn *connection, call func(*huawei.Client) error) error {
	err := call(conn.client)
	if err == nil || !isRefusal(err) {
		return err
	}
	// Between IAM taking the new password (which revokes the old token) and
	// the new connection, nothing works: wait for the rotation to end.
	if done := b.rotation.running(); done != nil {
		t := time.NewTimer(conn.cfg.RequestTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			return err
		}
	}
	cur := b.conn.Load()
	if cur == nil || cur == conn || cur.cfg.Generation != conn.cfg.Generation {
		return err
	}
	return call(cur.client)
}
