package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

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
	rotationKeyMarker  = "vault-plugin-secrets-sms rotation "
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
	b.rotation.clear() // a success ends the schedule's backoff
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
	case authMethodIDToken:
		return nil, &rotationError{status: http.StatusBadRequest, step: "choose what to rotate", err: errors.New(
			"the id_token method stores no credential to rotate: its JWT comes from where the plugin's registration says " +
				"and is exchanged for a short-lived IAM token")}
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

func isRefusal(err error) bool {
	var e *huawei.Error
	return errors.As(err, &e) && e.Kind == huawei.KindRefused
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
