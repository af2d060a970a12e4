package sms

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// duringFirstFetch runs change while the first upstream fetch of the next
// read is in flight, as an operator's write that lands while a team's read
// waits on SMS, and returns what the change's own requests answered.
func duringFirstFetch(env *testEnv, change func() []int) *[]int {
	var calls atomic.Int32
	statuses := &[]int{}
	env.b.fetchHook = func() {
		if calls.Add(1) == 1 {
			*statuses = change()
		}
	}
	env.t.Cleanup(func() { env.b.fetchHook = nil })
	return statuses
}

func deleteRole(env *testEnv, name string) func() []int {
	return func() []int {
		status, _ := env.del("roles/" + name)
		_, read, _ := env.read("roles/" + name)
		return []int{status, read}
	}
}

func writeRole(env *testEnv, name string, data map[string]any) func() []int {
	return func() []int {
		status, _ := env.write("roles/"+name, data)
		return []int{status}
	}
}

// roleReadPaths are the role paths a read can take: the passphrase and the
// certkey, each cold (the scope check goes upstream) or with the metadata
// cached and only the secret to fetch.
var roleReadPaths = []struct {
	name      string
	sub       string
	metaFirst bool
}{
	{"passphrase, cold", "passphrase", false},
	{"passphrase, metadata cached", "passphrase", true},
	{"certkey, cold", "certkey", false},
	{"certkey, metadata cached", "certkey", true},
}

// prepare leaves taskA1's metadata cached for team-a when metaFirst, and
// its passphrase and certkey out of the cache either way.
func prepare(t *testing.T, env *testEnv, metaFirst bool) {
	t.Helper()
	if metaFirst {
		_, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
		require.Equal(t, http.StatusOK, status, msg)
		// Only the task's secrets go; its metadata stays.
		env.b.cache.mu.Lock()
		if rec, ok := env.b.cache.tasks.Peek(taskA1); ok {
			rec.slots[kindPassphrase].Store(nil)
		}
		env.b.cache.mu.Unlock()
	}
}

// A role deleted while a read through it waits on SMS: the read ends with
// the 404 that a read starting after the delete gets, not with the secret.
func TestRoleDeletedDuringAReadIsNotServed(t *testing.T) {
	for _, p := range roleReadPaths {
		t.Run(p.name, func(t *testing.T) {
			env := newRolesEnv(t)
			prepare(t, env, p.metaFirst)
			statuses := duringFirstFetch(env, deleteRole(env, "team-a"))
			resp, status, msg := env.read("roles/team-a/" + p.sub + "/" + taskA1)
			require.Equal(t, []int{http.StatusNoContent, http.StatusNotFound}, *statuses, "the delete was done and seen")
			require.Equal(t, http.StatusNotFound, status, "served %v", resp != nil && resp.Data != nil)
			require.Contains(t, msg, `role "team-a" does not exist`)
		})
	}
}

// A role narrowed while a read through it waits on SMS: the read is judged
// by the narrowed role.
func TestRoleNarrowedDuringAReadIsJudgedAgain(t *testing.T) {
	for _, p := range roleReadPaths {
		t.Run(p.name, func(t *testing.T) {
			env := newRolesEnv(t)
			prepare(t, env, p.metaFirst)
			statuses := duringFirstFetch(env, writeRole(env, "team-a", map[string]any{"enterprise_project_ids": []any{"ep-elsewhere"}}))
			_, status, msg := env.read("roles/team-a/" + p.sub + "/" + taskA1)
			require.Equal(t, []int{http.StatusNoContent}, *statuses)
			require.Equal(t, http.StatusForbidden, status, msg)
		})
	}
}

// A role deleted and written again during a read: the read is judged by the
// new definition, whether it looks like the old one or scopes another team.
func TestRoleReplacedDuringAReadIsJudgedByTheNewOne(t *testing.T) {
	for _, p := range roleReadPaths {
		t.Run(p.name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				data map[string]any
				want int
			}{
				{"equal-looking", map[string]any{"enterprise_project_ids": []any{"ep-team-a"}, "description": "team A"}, http.StatusOK},
				{"another scope", map[string]any{"task_name_globs": []any{"team-b-*"}}, http.StatusForbidden},
			} {
				t.Run(tc.name, func(t *testing.T) {
					env := newRolesEnv(t)
					prepare(t, env, p.metaFirst)
					statuses := duringFirstFetch(env, func() []int {
						return append(deleteRole(env, "team-a")(), writeRole(env, "team-a", tc.data)()...)
					})
					_, status, msg := env.read("roles/team-a/" + p.sub + "/" + taskA1)
					require.Equal(t, []int{http.StatusNoContent, http.StatusNotFound, http.StatusNoContent}, *statuses)
					require.Equal(t, tc.want, status, msg)
				})
			}
		})
	}
}

// A role widened while a read through it waits on SMS to show the task:
// the read that would have been refused is judged by the wider role, and
// served, as a read starting after the write is.
func TestRoleWidenedDuringAReadIsJudgedAgain(t *testing.T) {
	for _, sub := range []string{"passphrase", "certkey"} {
		t.Run(sub, func(t *testing.T) {
			env := newRolesEnv(t)
			statuses := duringFirstFetch(env, writeRole(env, "team-b", map[string]any{"task_name_globs": []any{"team-b-*", "team-a-*"}}))
			resp, status, msg := env.read("roles/team-b/" + sub + "/" + taskA1)
			require.Equal(t, []int{http.StatusNoContent}, *statuses)
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, taskA1, resp.Data["task_id"])
		})
	}
}

// A read answered from the cache and a read that waited on SMS without any
// role change are served as before, with one upstream call each.
func TestRoleReadWithoutARoleChangeIsAnsweredOnce(t *testing.T) {
	env := newRolesEnv(t)
	var fetches atomic.Int32
	env.b.fetchHook = func() { fetches.Add(1) }
	t.Cleanup(func() { env.b.fetchHook = nil })
	for i := 0; i < 3; i++ {
		resp, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
		require.Equal(t, http.StatusOK, status, msg)
		require.Equal(t, "pp-a1-0123456789", resp.Data["passphrase"])
	}
	require.EqualValues(t, 2, fetches.Load(), "one metadata and one passphrase fetch")
}
