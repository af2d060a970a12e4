package sms

import (
	"context"
	"time"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// withRetryOnRotation runs call with the read's client (the mount's own,
// or via's agency credentials obtained with it) and, when the upstream
// refused that client's credential and a rotation has since replaced it,
// again with the new one: a read in flight during a rotation (or several in
// quick succession) does not fail because of it.
func (b *backend) withRetryOnRotation(ctx context.Context, conn *connection, via *agencyRef, call func(*huawei.Client) error) error {
	err := call(conn.clientFor(via))
	for tries := 0; tries < maxRotationRetries && err != nil && isRefusal(err); tries++ {
		next := b.rotatedConnection(ctx, conn)
		if next == nil {
			return err
		}
		conn = next
		err = call(conn.clientFor(via))
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
