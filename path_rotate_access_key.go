package sms

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

type accessKeyWAL struct {
	UserID       string `mapstructure:"user_id" json:"user_id"`
	OldAccessKey string `mapstructure:"old_access_key" json:"old_access_key"`
	Marker       string `mapstructure:"marker" json:"marker"`
	settleState  `mapstructure:",squash"`
}

// rotateAccessKey does the work under ctx and what must not be left half
// done (storing, deleting the old key, undoing) under cleanup.
func (b *backend) rotateAccessKey(ctx, cleanup context.Context, s logical.Storage, cfg *smsConfig) (*rotationResult, error) {
	client, err := b.rotationClient(ctx, s)
	if err != nil {
		return nil, err
	}
	if p, err := pendingOf(ctx, s, walKindAccessKey); err != nil {
		return nil, stepFailed("read the write-ahead log", err, "nothing was changed")
	} else if p != nil {
		// A key it created late would be a third, and the one IAM refuses.
		return nil, refuseWhileUnsettled(p)
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
	const step = "create a new access key"
	newAccess, newSecret, err := client.CreateAccessKey(ctx, owner.UserID, rotationKeyMarker+wal.Marker)
	if err != nil {
		if !outcomeUnknown(err) {
			// IAM answered, with an error: it created nothing.
			_ = framework.DeleteWAL(cleanup, s, walID)
			if strings.Contains(err.Error(), huawei.ErrKeyLimit) {
				return nil, &rotationError{status: http.StatusBadRequest, step: step, err: err, left: "no key was created"}
			}
			return nil, stepFailed(step, err, "no key was created")
		}
		// IAM may have created the key, now or later: delete what is
		// there now, and leave the entry for a rollback that looks again.
		found := "nothing"
		if res, uerr := b.rollbackAccessKey(cleanup, s, wal); uerr != nil {
			found = fmt.Sprintf("nothing yet (looking failed: %v)", uerr)
		} else if len(res.deleted) > 0 {
			found = strings.Join(res.deleted, ", ")
		}
		after := b.unsettle(cleanup, s, walKindAccessKey, walID, &wal.settleState, &wal, step)
		b.logger.Warn("rotation unsettled: IAM may have created an access key; the write-ahead log rollback looks again",
			"marker", rotationKeyMarker+wal.Marker, "settle_after", after.Format(time.RFC3339), "error", err.Error())
		return nil, stepFailed(step, err, fmt.Sprintf(
			"the answer was lost, so a key MAY have been created (now or later): deleted so far: %s; the write-ahead log rollback "+
				"looks again from %s, for keys whose description holds %q, and deletes them; the configured key is unchanged, "+
				"and rotate-root is refused until then", found, after.Format(time.RFC3339), rotationKeyMarker+wal.Marker))
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
	if left := b.deleteReplacedKey(cleanup, s, owner.UserID, cfg.AccessKey, newAccess); left != "" {
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
func (b *backend) deleteReplacedKey(ctx context.Context, s logical.Storage, userID, old, current string) string {
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
	listsNew := false
	for _, k := range keys {
		if k.Access == old {
			return fmt.Sprintf("the new key is stored and in use, and IAM accepted the deletion of the old key %s but still lists it: %s", old, retry)
		}
		listsNew = listsNew || k.Access == current
	}
	if !listsNew {
		// The new key is the user's and signed the list: a list without it
		// (null, empty, a gateway's) says nothing about the old one.
		return fmt.Sprintf("the new key is stored and in use, and IAM accepted the deletion of the old key %s, "+
			"but its list of the user's keys does not hold the new key either, so it cannot confirm it: %s", old, retry)
	}
	return ""
}

// checkNewKey calls IAM with the new key until it works (IAM may take a few
// seconds to accept a new key), within keyCheckBound.
func (b *backend) checkNewKey(ctx context.Context, cfg *smsConfig) error {
	client, err := newClient(cfg, nil, b.now, b.logger, nil, nil)
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
	client, err := newClient(cfg, nil, b.now, b.logger, nil, nil)
	if err != nil {
		return res, err
	}
	defer client.Close()
	keys, err := client.ListAccessKeys(ctx, wal.UserID)
	if err != nil {
		return res, err
	}
	if err := b.checkKeyList(ctx, client, cfg.AccessKey, wal.UserID, keys); err != nil {
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

// checkKeyList tells a list of userID's keys that can be taken as evidence
// from one that cannot: the configured key signed the request, so when it
// is userID's it must be listed. A list without it (null, empty, a
// gateway's answer) would make a rollback drop an entry whose key IAM may
// still hold: an error keeps the entry for the next rollback.
func (b *backend) checkKeyList(ctx context.Context, client *huawei.Client, configured, userID string, keys []huawei.AccessKeyInfo) error {
	for _, k := range keys {
		if k.Access == configured {
			return nil
		}
	}
	owner, err := client.ShowAccessKey(ctx, configured)
	if err != nil {
		return err
	}
	if owner.UserID != userID {
		return nil // another user's key since a config write: this user's list need not hold it
	}
	return fmt.Errorf("IAM listed the user's access keys without the configured key %s, which is the user's and works: "+
		"the list is not evidence, and the write-ahead log entry stays for the next rollback", configured)
}
