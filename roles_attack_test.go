package sms

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// blockOnceStorage blocks the first Get of one key until release is
// closed, telling entered when it starts waiting: a slow storage read (a
// seal-wrapped config behind an HSM, a busy Raft node).
type blockOnceStorage struct {
	logical.Storage
	key     string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *blockOnceStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.key {
		s.once.Do(func() {
			close(s.entered)
			<-s.release
		})
	}
	return s.Storage.Get(ctx, key)
}

// A cached role read that waits on loading the connection (another node
// changed the config, so this node reloads it from storage) judges by the
// role it looked up before that wait: the role deleted meanwhile still
// serves the passphrase. The hot path "waits for nothing" only when the
// connection is in place.
func TestAttackCachedRoleReadWaitingOnTheConfigIsNotJudgedAgain(t *testing.T) {
	env := newRolesEnv(t)
	_, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)

	bs := &blockOnceStorage{Storage: env.storage, key: configStorageKey, entered: make(chan struct{}), release: make(chan struct{})}
	env.storage = bs
	// Another node rotated the credential: this node reloads the config on
	// its next read, keeping the cache (the generation is unchanged).
	env.b.invalidate(context.Background(), configStorageKey)

	type result struct {
		status int
		data   map[string]any
	}
	done := make(chan result, 1)
	go func() {
		resp, status, _ := env.read("roles/team-a/passphrase/" + taskA1)
		var data map[string]any
		if resp != nil {
			data = resp.Data
		}
		done <- result{status, data}
	}()
	<-bs.entered

	status, msg = env.del("roles/team-a")
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, _ = env.read("roles/team-a")
	require.Equal(t, http.StatusNotFound, status, "the delete is done and seen")
	close(bs.release)

	r := <-done
	require.Equal(t, http.StatusNotFound, r.status, "served by a role deleted while the read waited (passphrase returned: %v)", r.data["passphrase"] != nil)
}

// The README: a task moved to another enterprise project "drops out of
// scope ... at once after vault delete sms/passphrase/<task_id>". A role
// read that passed its scope check and waits on the passphrase when the
// operator does so is still served, judged by the metadata the operator
// just evicted: the re-check looks at the role, not at what it admitted.
func TestAttackTaskEvictedDuringARoleReadIsStillServed(t *testing.T) {
	env := newRolesEnv(t)
	var calls atomic.Int32
	env.b.fetchHook = func() {
		if calls.Add(1) == 2 { // the passphrase fetch, after the scope check's ShowTask
			env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-web01", EnterpriseProjectID: "ep-team-b", State: "SYNCING"})
			status, _ := env.del("passphrase/" + taskA1)
			assert.Equal(t, http.StatusNoContent, status)
			_, status, _ = env.read("roles/team-a/passphrase/" + taskA1)
			assert.Equal(t, http.StatusForbidden, status, "a read starting after the eviction")
		}
	}
	t.Cleanup(func() { env.b.fetchHook = nil })
	resp, status, _ := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusForbidden, status, "served after the operator evicted the task (passphrase returned: %v)", resp != nil && resp.Data["passphrase"] != nil)
}

// A list through a role that waits on SMS while the operator deletes the
// role: the list is answered from the deleted role, with the names, states
// and enterprise projects of the tasks it scoped. Passphrase and certkey
// reads are judged again; lists are not.
func TestAttackRoleDeletedDuringAListIsStillAnswered(t *testing.T) {
	env := newRolesEnv(t)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200, Call: "tasks", Body: smsfake.BodyHold, Times: 1}))
	done := make(chan int, 1)
	go func() {
		_, status, _ := listRole(t, env, "team-a")
		done <- status
	}()
	require.Eventually(t, func() bool { return env.fake.Stats().ListRequests == 1 }, 10*time.Second, time.Millisecond, "the list never reached SMS")
	status, msg := env.del("roles/team-a")
	require.Equal(t, http.StatusNoContent, status, msg)
	env.fake.Release()
	require.Equal(t, http.StatusNotFound, <-done, "a list through a role deleted while it waited")
}

// The same for a certkey read through a role: its scope check passed, and
// the operator evicts the task while the certkey is fetched.
func TestTaskEvictedDuringARoleCertKeyReadIsJudgedAgain(t *testing.T) {
	env := newRolesEnv(t)
	var calls atomic.Int32
	env.b.fetchHook = func() {
		if calls.Add(1) == 2 { // the certkey fetch, after the scope check's ShowTask
			env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-web01", EnterpriseProjectID: "ep-team-b", State: "SYNCING"})
			status, _ := env.del("passphrase/" + taskA1)
			assert.Equal(t, http.StatusNoContent, status)
		}
	}
	t.Cleanup(func() { env.b.fetchHook = nil })
	resp, status, _ := env.read("roles/team-a/certkey/" + taskA1)
	require.Equal(t, http.StatusForbidden, status, "served after the operator evicted the task (keys returned: %v)", resp != nil && len(resp.Data) > 0)
}

// A list through a role narrowed while it waited on SMS answers by the
// narrowed role: it is listed again.
func TestRoleNarrowedDuringAListIsListedAgain(t *testing.T) {
	env := newRolesEnv(t)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200, Call: "tasks", Body: smsfake.BodyHold, Times: 1}))
	type result struct {
		status int
		keys   any
	}
	done := make(chan result, 1)
	go func() {
		resp, status, _ := listRole(t, env, "team-a")
		var keys any
		if resp != nil {
			keys = resp.Data["keys"]
		}
		done <- result{status, keys}
	}()
	require.Eventually(t, func() bool { return env.fake.Stats().ListRequests == 1 }, 10*time.Second, time.Millisecond, "the list never reached SMS")
	status, msg := env.write("roles/team-a", map[string]any{"task_name_globs": "*-db*"})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.fake.Release()
	r := <-done
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, []string{taskA2}, r.keys, "listed by the role stored when the list ended")
}
