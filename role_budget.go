package sms

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"
)

// newRoleLimiter is a role's upstream budget: max_upstream_rps fetches a
// second, up to one second's worth at once (a team's Agents starting
// together read metadata, then passphrase, of several tasks). nil when the
// role sets none: only the mount's limit applies.
func newRoleLimiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(rps), max(1, int(math.Ceil(rps))))
}

// budget is what one read through a role may spend upstream: a slot of its
// role's limiter for each fetch it starts. Joining a fetch in flight, that
// of another team included, is free, and never waits on another role's
// budget: the slot is taken before the flight is, by the reader that
// starts it.
type budget struct {
	limiter *rate.Limiter
	role    string
	rps     float64
	wait    time.Duration // at most request_timeout
	b       *backend      // counts and logs a refusal
}

// budgetFor is r's budget for a read under conn, or nil when r has none.
func (b *backend) budgetFor(r *role, name string, conn *connection) *budget {
	if r.limiter == nil {
		return nil
	}
	return &budget{limiter: r.limiter, role: name, rps: r.MaxUpstreamRPS, wait: conn.cfg.RequestTimeout, b: b}
}

// take waits for a slot, or fails at once, without taking one, when none
// would come within request_timeout (or before the read's own deadline).
// With a slot, it returns the deadline of the fetch the slot pays for:
// request_timeout bounds the wait and the fetch together, as it bounds the
// mount's rate-limit waits. Without a budget, the zero time: the fetch has
// its own request_timeout.
func (b *budget) take(ctx context.Context) (time.Time, error) {
	if b == nil {
		return time.Time{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := b.limiter.Wait(ctx); err != nil {
		// The operator's view of a team hitting its budget: sms/cache's
		// role_rate_limited, and a line naming the role.
		b.b.stats.roleLimited.Add(1)
		b.b.logger.Warn("sms request not sent: the role's max_upstream_rps left no slot before request_timeout",
			"role", b.role, "max_upstream_rps", b.rps)
		return time.Time{}, &budgetExhausted{role: b.role, rps: b.rps}
	}
	return deadline, nil
}

// budgetExhausted is a fetch not started for a role's budget. It is
// temporary, like the mount's own limit: stale_if_error may cover it.
type budgetExhausted struct {
	role string
	rps  float64
}

func (e *budgetExhausted) Error() string {
	return fmt.Sprintf("request not sent: role %q's max_upstream_rps (%g) left no slot before the read's deadline (request_timeout)", e.role, e.rps)
}

func (e *budgetExhausted) Temporary() bool { return true }

func (e *budgetExhausted) coded() error {
	return logical.CodedError(http.StatusTooManyRequests, e.Error())
}
