package sms

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// madeUp is the i-th task id that exists nowhere.
func madeUp(i int) string { return fmt.Sprintf("%08x-dead-4bee-8f00-000000000000", i) }

// Team A, with only its role's paths, reads ids it made up: each becomes an
// "absent" marker. However many, they never evict team B's cached
// passphrase or certkey.
func TestProbesOfMadeUpIdsDoNotEvictAnotherTeamsSecrets(t *testing.T) {
	env := newRolesEnv(t)
	env.configure(map[string]any{"cache_max_entries": 4})
	for _, p := range []string{"roles/team-b/passphrase/" + taskB1, "roles/team-b/certkey/" + taskB1} {
		_, status, msg := env.read(p)
		require.Equal(t, http.StatusOK, status, msg)
	}
	before := env.fake.Stats()
	stats := env.cacheStats()
	for i := 0; i < 50; i++ {
		_, status, msg := env.read("roles/team-a/passphrase/" + madeUp(i))
		require.Equal(t, http.StatusForbidden, status, msg)
	}
	after := env.cacheStats()
	require.EqualValues(t, 1, after["entries"], "team B's passphrase")
	require.EqualValues(t, 1, after["certkey_entries"], "team B's certkey")
	require.EqualValues(t, 5, after["task_entries"], "team B's metadata with its passphrase, and 4 markers (the bound)")
	require.Equal(t, toInt(stats["task_misses"])+50, toInt(after["task_misses"]))
	require.EqualValues(t, before.TaskRequests+50, env.fake.Stats().TaskRequests)

	for _, p := range []string{"roles/team-b/passphrase/" + taskB1, "roles/team-b/certkey/" + taskB1, "passphrase/" + taskB1} {
		_, status, msg := env.read(p)
		require.Equal(t, http.StatusOK, status, msg)
	}
	now := env.fake.Stats()
	require.Equal(t, before.ByTask[taskB1], now.ByTask[taskB1], "team B's passphrase was fetched again")
	require.Equal(t, before.CertKeyByTask[taskB1], now.CertKeyByTask[taskB1], "team B's certkey was fetched again")
	require.Equal(t, before.TaskRequests+50, now.TaskRequests, "team B's metadata was fetched again")
	final := env.cacheStats()
	require.Equal(t, toInt(after["hits"])+2, toInt(final["hits"]))
	require.Equal(t, toInt(after["certkey_hits"])+1, toInt(final["certkey_hits"]))
	require.Equal(t, toInt(after["task_hits"])+2, toInt(final["task_hits"]))
	require.Equal(t, after["misses"], final["misses"])

	// A probe's marker still answers a repeat of that probe, without SMS.
	_, status, _ := env.read("roles/team-a/passphrase/" + madeUp(49))
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, now.TaskRequests, env.fake.Stats().TaskRequests)

	// Deleting the task, and flushing, reach the markers too.
	require.Equal(t, http.StatusNoContent, func() int { s, _ := env.del("passphrase/" + madeUp(49)); return s }())
	require.EqualValues(t, 4, env.cacheStats()["task_entries"])
	require.Equal(t, http.StatusNoContent, func() int { s, _ := env.del("cache"); return s }())
	require.EqualValues(t, 0, env.cacheStats()["task_entries"])
}

// A task whose metadata was cached before its passphrase keeps it once the
// passphrase arrives: one metadata request, and the next role read is
// answered from the cache.
func TestMetadataFollowsItsTaskIntoTheCache(t *testing.T) {
	env := newRolesEnv(t)
	_, status, _ := env.read("roles/team-b/passphrase/" + taskA1) // metadata only: out of scope
	require.Equal(t, http.StatusForbidden, status)
	_, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	_, status, msg = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 1, env.fake.Stats().TaskRequests)
	require.EqualValues(t, 1, env.cacheStats()["task_entries"])
	rec, ok := env.b.cache.tasks.Peek(taskA1)
	require.True(t, ok)
	require.NotNil(t, rec.slots[kindTask].Load(), "the metadata moved into the task's record")
	_, inMeta := env.b.cache.meta.Peek(taskA1)
	require.False(t, inMeta)
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case uint64:
		return int64(n) //nolint:gosec // G115: a counter of a test, far below 2^63
	case int64:
		return n
	}
	panic(fmt.Sprintf("%T", v))
}

// oneFetchBudget is a budget of one fetch in a thousand seconds: once it is
// spent, no test lasts long enough to see another slot, and a read that
// would need one fails at once, without waiting.
const oneFetchBudget = 0.001

// A role's max_upstream_rps bounds the fetches its reads start: past it, a
// read that needs SMS is a 429 and sends nothing. The budget outlives the
// reads (a read does not start a fresh one), and a role change replaces it.
func TestRoleBudgetIsEnforced(t *testing.T) {
	env := newRolesEnv(t)
	status, msg := env.write("roles/team-a", map[string]any{"max_upstream_rps": oneFetchBudget})
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, _, _ := env.read("roles/team-a")
	require.Equal(t, oneFetchBudget, resp.Data["max_upstream_rps"])

	_, status, _ = env.read("roles/team-a/passphrase/" + madeUp(0))
	require.Equal(t, http.StatusForbidden, status, "the budget's one fetch")
	sent := env.fake.Stats().TaskRequests
	for i := 1; i <= 20; i++ {
		_, status, msg = env.read("roles/team-a/passphrase/" + madeUp(i))
		require.Equal(t, http.StatusTooManyRequests, status, msg)
		require.Contains(t, msg, `role "team-a"'s max_upstream_rps (0.001) left no slot`)
	}
	_, status, msg = env.read("roles/team-a/certkey/" + taskA1)
	require.Equal(t, http.StatusTooManyRequests, status, msg)
	_, status, msg = listRole(t, env, "team-a")
	require.Equal(t, http.StatusTooManyRequests, status, msg)
	// The operator sees it: a counter, and a log line naming the role.
	require.EqualValues(t, 22, env.cacheStats()["role_rate_limited"])
	require.Contains(t, env.logs.String(), `sms request not sent: the role's max_upstream_rps left no slot before request_timeout: role=team-a max_upstream_rps=0.001`)
	require.Equal(t, sent, env.fake.Stats().TaskRequests, "a read past the budget reached SMS")
	require.Zero(t, env.fake.Stats().ListRequests)

	// What is cached costs nothing: the probe's marker still answers.
	_, status, _ = env.read("roles/team-a/passphrase/" + madeUp(0))
	require.Equal(t, http.StatusForbidden, status)

	// A changed role brings a new budget.
	status, msg = env.write("roles/team-a", map[string]any{"max_upstream_rps": 1000})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	status, msg = env.write("roles/team-a", map[string]any{"max_upstream_rps": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	for i := 100; i < 110; i++ {
		_, status, msg = env.read("roles/team-a/passphrase/" + madeUp(i))
		require.Equal(t, http.StatusForbidden, status, "0: only the mount's limit: %s", msg)
	}
}

// Team A spending all of its budget on made-up ids leaves team B's reads
// alone: B's cold reads, of its own tasks and of the very ids A is probing,
// are served, and A's refused probes start no fetch for B to wait on.
func TestRoleBudgetExhaustionDoesNotDelayAnotherTeam(t *testing.T) {
	env := newRolesEnv(t)
	status, msg := env.write("roles/team-a", map[string]any{"max_upstream_rps": oneFetchBudget})
	require.Equal(t, http.StatusNoContent, status, msg)
	status, msg = env.write("roles/team-b", map[string]any{"max_upstream_rps": 1000})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, _ = env.read("roles/team-a/passphrase/" + madeUp(0))
	require.Equal(t, http.StatusForbidden, status)
	for i := 1; i < 20; i++ {
		_, status, _ = env.read("roles/team-a/passphrase/" + madeUp(i))
		require.Equal(t, http.StatusTooManyRequests, status)
	}
	_, status, _ = env.read("roles/team-a/passphrase/" + taskB1)
	require.Equal(t, http.StatusTooManyRequests, status, "team A probing team B's task")

	for _, p := range []string{"roles/team-b/passphrase/" + taskB1, "roles/team-b/certkey/" + taskB1, "roles/team-b/passphrase/" + madeUp(5)} {
		_, status, msg := env.read(p)
		require.NotEqual(t, http.StatusTooManyRequests, status, "%s: %s", p, msg)
	}
	resp, status, msg := env.read("roles/team-b/passphrase/" + taskB1)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "pp-b1-0123456789", resp.Data["passphrase"])
	_, status, msg = listRole(t, env, "team-b")
	require.Equal(t, http.StatusOK, status, msg)
}

// A read that joins a fetch already in flight starts nothing, and pays
// nothing: a team's many readers of one cold task cost one slot.
func TestJoiningAFetchInFlightCostsNoBudget(t *testing.T) {
	env := newRolesEnv(t)
	status, msg := env.write("roles/team-a", map[string]any{"max_upstream_rps": oneFetchBudget})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.configure(map[string]any{"cache_ttl": "1h"})
	_, status, _ = env.read("passphrase/" + taskA1) // the passphrase cached: one slot for the metadata is enough
	require.Equal(t, http.StatusOK, status)
	const readers = 10
	results := make(chan int, readers)
	env.b.fetchHook = func() {
		// In the metadata fetch: every other reader of the task finds it in
		// flight, joins it, and must not need a slot.
		for i := 1; i < readers; i++ {
			go func() {
				_, status, _ := env.read("roles/team-a/passphrase/" + taskA1)
				results <- status
			}()
		}
		for env.b.cache.stats[kindTask].misses.Load() < readers {
			runtime.Gosched()
		}
	}
	t.Cleanup(func() { env.b.fetchHook = nil })
	_, status, msg = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	for i := 1; i < readers; i++ {
		require.Equal(t, http.StatusOK, <-results)
	}
	require.EqualValues(t, 1, env.fake.Stats().TaskRequests)
}

func TestRoleBudgetValidation(t *testing.T) {
	env := newRolesEnv(t)
	for _, bad := range []any{-1, "-0.5", 10001, "NaN", "Inf", "lots", []any{1}} {
		status, msg := env.write("roles/team-a", map[string]any{"max_upstream_rps": bad})
		require.Equal(t, http.StatusBadRequest, status, "%v: %s", bad, msg)
		require.Contains(t, msg, "max_upstream_rps", "%v", bad)
		resp, _, _ := env.read("roles/team-a")
		require.Equal(t, 0.0, resp.Data["max_upstream_rps"], "nothing stored for %v", bad)
	}
	for _, good := range []any{0.5, "2.5", 10000, 0} {
		status, msg := env.write("roles/team-a", map[string]any{"max_upstream_rps": good})
		require.Equal(t, http.StatusNoContent, status, "%v: %s", good, msg)
	}
	// A new role may carry it from the start; another update keeps it.
	status, msg := env.write("roles/team-c", map[string]any{"task_name_globs": "team-c-*", "max_upstream_rps": 3})
	require.Equal(t, http.StatusNoContent, status, msg)
	status, msg = env.write("roles/team-c", map[string]any{"description": "team C"})
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, _, _ := env.read("roles/team-c")
	require.Equal(t, 3.0, resp.Data["max_upstream_rps"])
	r, known := env.b.roles.cached("team-c")
	require.True(t, known)
	require.NotNil(t, r.limiter)
	_, status, _ = env.request(logical.ReadOperation, "roles/team-c", nil)
	require.Equal(t, http.StatusOK, status)
}

// request_timeout bounds one upstream fetch, every rate-limit wait
// included: a fetch a role's budget paid for ends by the deadline of the
// wait for its slot, not request_timeout after the wait ended. A read
// through no budget is bounded by the client alone.
func TestRoleBudgetWaitAndFetchShareOneTimeout(t *testing.T) {
	c := newCache(10, time.Now, hclog.NewNullLogger())
	const wait = 5 * time.Second
	spend := &budget{limiter: newRoleLimiter(1000), role: "team-a", rps: 1000, wait: wait}
	var deadline time.Time
	var bounded bool
	var latest time.Time
	_, err := c.fetch(context.Background(), cacheKey{kind: kindTask, id: taskA1}, c.currentEpoch(), cachePolicy{ttl: time.Minute}, spend,
		func(ctx context.Context) (any, error) {
			latest = time.Now()
			deadline, bounded = ctx.Deadline()
			return &huawei.Task{}, nil
		})
	require.NoError(t, err)
	require.True(t, bounded, "the fetch has no deadline of its own: request_timeout would start again after the wait")
	require.False(t, deadline.After(latest.Add(wait)), "the fetch's deadline is request_timeout after the wait began")

	_, err = c.fetch(context.Background(), cacheKey{kind: kindTask, id: taskA2}, c.currentEpoch(), cachePolicy{ttl: time.Minute}, nil,
		func(ctx context.Context) (any, error) {
			_, bounded = ctx.Deadline()
			return &huawei.Task{}, nil
		})
	require.NoError(t, err)
	require.False(t, bounded, "without a budget the client's request_timeout is the bound")
}
