package sms

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A failed scheduled rotation is tried again after this, doubling up to
// maxRotationBackoff: never a hot loop against IAM.
const (
	firstRotationBackoff = time.Minute
	maxRotationBackoff   = time.Hour
)

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

// backoffUntil is when the schedule tries again after failures, or zero.
func (r *rotationState) backoffUntil() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryAt
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
