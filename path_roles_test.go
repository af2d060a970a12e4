package sms

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Task ids are UUIDs, as SMS assigns them; teams are told apart by
// enterprise project and task name.
const (
	taskA1 = "d7fa81b9-c174-4c0a-a475-51a54c8af8a4"
	taskA2 = "3f1c9a52-7d0e-4b8a-9c11-0a2b3c4d5e6f"
	taskB1 = "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586"
	taskNo = "00000000-0000-4000-8000-000000000000" // exists nowhere
)

// newRolesEnv has tasks of two teams in two enterprise projects, and one
// role per team.
func newRolesEnv(t *testing.T) *testEnv {
	t.Helper()
	env := newTestEnvWith(t, func(o *smsfake.Options) {
		o.Tasks = map[string]string{testTask: testPassphrase, taskA1: "pp-a1-0123456789", taskA2: "pp-a2-0123456789", taskB1: "pp-b1-0123456789"}
		o.TaskMeta = map[string]smsfake.TaskMeta{
			taskA1: {Name: "team-a-web01", EnterpriseProjectID: "ep-team-a", State: "SYNCING"},
			taskA2: {Name: "team-a-db01", EnterpriseProjectID: "ep-team-a", State: "READY"},
			taskB1: {Name: "team-b-web01", EnterpriseProjectID: "ep-team-b", State: "READY"},
		}
	})
	env.configure(nil)
	status, msg := env.write("roles/team-a", map[string]any{"enterprise_project_ids": []any{"ep-team-a"}, "description": "team A"})
	require.Equal(t, http.StatusNoContent, status, msg)
	status, msg = env.write("roles/team-b", map[string]any{"task_name_globs": "team-b-*"})
	require.Equal(t, http.StatusNoContent, status, msg)
	return env
}

func TestRoleCRUDAndList(t *testing.T) {
	env := newRolesEnv(t)
	resp, status, msg := env.read("roles/team-a")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, map[string]any{"enterprise_project_ids": []string{"ep-team-a"}, "task_name_globs": []string{}, "description": "team A", "max_upstream_rps": 0.0,
		"agency_name": "", "agency_domain_id": "", "agency_domain_name": "", "agency_duration": int64(0), "agency_session_name": ""}, resp.Data)

	// An update changes only the fields it names.
	status, msg = env.write("roles/team-a", map[string]any{"task_name_globs": []any{"team-a-*", " team-a-* ", "*-web*"}})
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, _, _ = env.read("roles/team-a")
	require.Equal(t, []string{"ep-team-a"}, resp.Data["enterprise_project_ids"])
	require.Equal(t, []string{"team-a-*", "*-web*"}, resp.Data["task_name_globs"], "trimmed and de-duplicated")

	resp, status, _ = env.request(logical.ListOperation, "roles/", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{"team-a", "team-b"}, resp.Data["keys"])

	status, _ = env.del("roles/team-b")
	require.Equal(t, http.StatusNoContent, status)
	_, status, msg = env.read("roles/team-b")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, msg, `role "team-b" does not exist`)

	// Existence check: create for a new role, update for an existing one.
	for name, want := range map[string]bool{"team-a": true, "team-c": false} {
		_, exists, err := env.b.HandleExistenceCheck(context.Background(), &logical.Request{
			Operation: logical.CreateOperation, Path: "roles/" + name, Storage: env.storage})
		require.NoError(t, err)
		require.Equal(t, want, exists, name)
	}
}

func TestRoleValidationNamesTheField(t *testing.T) {
	env := newTestEnv(t)
	cases := []struct {
		path  string
		data  map[string]any
		field string
	}{
		{"roles/", map[string]any{"task_name_globs": "x"}, "role"},
		{"roles/bad.name", map[string]any{"task_name_globs": "x"}, "role"},
		{"roles/" + strings.Repeat("r", 65), map[string]any{"task_name_globs": "x"}, "role"},
		{"roles/ok", map[string]any{}, "enterprise_project_ids, task_name_globs or agency_name"},
		{"roles/ok", map[string]any{"task_name_globs": []any{}}, "enterprise_project_ids, task_name_globs or agency_name"},
		{"roles/ok", map[string]any{"task_name_globs": []any{"a", ""}}, "task_name_globs"},
		{"roles/ok", map[string]any{"task_name_globs": "a,,b"}, "task_name_globs"},
		{"roles/ok", map[string]any{"task_name_globs": []any{"a\x00b"}}, "task_name_globs"},
		{"roles/ok", map[string]any{"task_name_globs": 42}, "task_name_globs"},
		{"roles/ok", map[string]any{"task_name_globs": map[string]any{"a": "b"}}, "task_name_globs"},
		{"roles/ok", map[string]any{"task_name_globs": []any{"a", 7}}, "task_name_globs"},
		{"roles/ok", map[string]any{"enterprise_project_ids": true}, "enterprise_project_ids"},
		{"roles/ok", map[string]any{"enterprise_project_ids": []any{"ep a"}}, "enterprise_project_ids"},
		{"roles/ok", map[string]any{"enterprise_project_ids": []any{""}, "task_name_globs": "x"}, "enterprise_project_ids"},
		{"roles/ok", map[string]any{"task_name_globs": "x", "description": strings.Repeat("d", 1025)}, "description"},
	}
	for _, tc := range cases {
		status, msg := env.write(tc.path, tc.data)
		require.Equal(t, http.StatusBadRequest, status, "%s %v: %s", tc.path, tc.data, msg)
		require.Contains(t, msg, tc.field, "%s %v", tc.path, tc.data)
	}
	_, status, _ := env.request(logical.ListOperation, "roles/", nil)
	require.Equal(t, http.StatusNotFound, status, "Vault answers an empty LIST with 404")
	names, err := env.storage.List(context.Background(), roleStoragePrefix)
	require.NoError(t, err)
	require.Empty(t, names, "nothing invalid was stored")

	// Reads and deletes of a bad name are 400s too.
	_, status, msg := env.read("roles/bad.name")
	require.Equal(t, http.StatusBadRequest, status, msg)
	status, _ = env.del("roles/bad.name")
	require.Equal(t, http.StatusBadRequest, status)
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"team-a-*", "team-a-web01", true}, {"team-a-*", "team-a-", true},
		{"team-a-*", "team-b-web01", false}, {"team-a-*", "xteam-a-web", false}, {"*-web*", "team-a-web01", true},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"exact", "exact", true}, {"exact", "exactly", false},
		{"Team-A-*", "team-a-web", false}, {"a**b", "ab", true}, {"*.*", "a.b", true}, {"*.*", "ab", false},
		{"?", "?", true}, {"?", "a", false}, {"迁移-*", "迁移-任务", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false}, // no exponential backtracking
	} {
		require.Equal(t, tc.want, globMatch(tc.pattern, tc.name), "%q ~ %q", tc.pattern, tc.name)
	}
}

func TestRoleScope(t *testing.T) {
	task := func(name, ep string) *huawei.Task { return &huawei.Task{Name: name, EnterpriseProjectID: ep} }
	both := (&role{EnterpriseProjectIDs: []string{"ep-a", "0"}, TaskNameGlobs: []string{"web-*", "db-*"}}).compile()
	require.True(t, both.allows(task("web-1", "ep-a")))
	require.True(t, both.allows(task("db-1", "0")))
	require.False(t, both.allows(task("web-1", "ep-b")), "both constraints must hold")
	require.False(t, both.allows(task("app-1", "ep-a")), "both constraints must hold")
	require.False(t, both.allows(task("web-1", "")), "no enterprise project matches no role that names some")
	require.True(t, (&role{TaskNameGlobs: []string{"*"}}).compile().allows(task("", "")))
	require.False(t, (&role{TaskNameGlobs: []string{"*"}}).allows(task("x", "")), "an uncompiled role fails closed")
	require.True(t, (&role{EnterpriseProjectIDs: []string{"ep-a"}}).compile().allows(task("", "ep-a")))
	require.False(t, (&role{}).compile().allows(task("x", "0")), "a role without constraints (from storage) allows nothing")

	// Big roles take their sets; the answers are the same.
	big := &role{TaskNameGlobs: []string{"a-*", "team-b-*", "exact-name", "*-web*", "x*y", "team-*-db*"}}
	var eps []string
	for i := 0; i < 10; i++ {
		eps = append(eps, fmt.Sprintf("ep-%d", i))
	}
	big.EnterpriseProjectIDs = eps
	big.compile()
	require.NotNil(t, big.epSet)
	require.NotNil(t, big.names.prefixes)
	for name, want := range map[string]bool{
		"a-1": true, "team-b-web01": true, "exact-name": true, "exact-name2": false, "x-web-1": true,
		"xzzy": true, "team-q-db01": true, "team-q-app": false, "b-1": false, "": false,
	} {
		require.Equal(t, want, big.allows(task(name, "ep-9")), name)
		for _, g := range big.TaskNameGlobs {
			if globMatch(g, name) {
				require.True(t, want, "the set lookup agrees with the globs for %q", name)
			}
		}
	}
	require.False(t, big.allows(task("a-1", "ep-10")))
}

func TestRoleReadsServeTheirScopeOnly(t *testing.T) {
	env := newRolesEnv(t)
	resp, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, map[string]any{"task_id": taskA1, "passphrase": "pp-a1-0123456789"}, resp.Data)
	require.Nil(t, resp.Secret)
	resp, status, msg = env.read("roles/team-b/passphrase/" + taskB1)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "pp-b1-0123456789", resp.Data["passphrase"])

	// Another team's task, and a task that does not exist: the same 403.
	before := env.fake.Stats().Requests
	_, status, outOfScope := env.read("roles/team-a/passphrase/" + taskB1)
	require.Equal(t, http.StatusForbidden, status, outOfScope)
	_, status, missing := env.read("roles/team-a/passphrase/" + taskNo)
	require.Equal(t, http.StatusForbidden, status, missing)
	require.Equal(t, strings.Replace(outOfScope, taskB1, taskNo, 1), missing, "a team cannot tell the two apart")
	require.Contains(t, missing, "is not in the scope of role \"team-a\", or does not exist")

	require.Equal(t, before, env.fake.Stats().Requests, "no passphrase request for a task out of scope")
	require.NotContains(t, outOfScope, "pp-b1")

	// A role that does not exist, bad names and ids, and no config.
	_, status, msg = env.read("roles/team-z/passphrase/" + taskA1)
	require.Equal(t, http.StatusNotFound, status, msg)
	_, status, msg = env.read("roles/team-a/passphrase/a..b/c")
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "task_id")
	_, status, msg = env.read("roles/bad.role/passphrase/" + taskA1)
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "role")
}

func TestRoleReadsShareTheCacheWithEachOtherAndTheDirectPath(t *testing.T) {
	env := newRolesEnv(t)
	status, msg := env.write("roles/web", map[string]any{"task_name_globs": "*-web01"})
	require.Equal(t, http.StatusNoContent, status, msg)

	for i := 0; i < 3; i++ {
		for _, path := range []string{"roles/team-a/passphrase/" + taskA1, "roles/web/passphrase/" + taskA1, "passphrase/" + taskA1} {
			resp, status, msg := env.read(path)
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, "pp-a1-0123456789", resp.Data["passphrase"])
		}
	}
	st := env.fake.Stats()
	require.EqualValues(t, 1, st.ByTask[taskA1], "one passphrase request per TTL, whatever the path")
	require.EqualValues(t, 1, st.TaskRequests, "one metadata request, shared by every role")

	stats := env.cacheStats()
	require.EqualValues(t, 1, stats["entries"])
	require.EqualValues(t, 1, stats["task_entries"])
	require.EqualValues(t, 5, stats["task_hits"])
	require.EqualValues(t, 1, stats["task_misses"])

	// delete sms/passphrase/<id> evicts the metadata too.
	status, _ = env.del("passphrase/" + taskA1)
	require.Equal(t, http.StatusNoContent, status)
	require.EqualValues(t, 0, env.cacheStats()["task_entries"])
	env.read("roles/team-a/passphrase/" + taskA1)
	require.EqualValues(t, 2, env.fake.Stats().TaskRequests)
	require.EqualValues(t, 2, env.fake.Stats().ByTask[taskA1])

	// A config write drops both.
	env.configure(map[string]any{"request_timeout": "9s"})
	require.EqualValues(t, 0, env.cacheStats()["task_entries"])
}

func TestRoleChangesTakeEffectOnTheNextRead(t *testing.T) {
	env := newRolesEnv(t)
	_, status, _ := env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusForbidden, status)

	status, msg := env.write("roles/team-b", map[string]any{"task_name_globs": []any{"team-b-*", "team-a-web*"}})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	_, status, msg = env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg, "a repeat read, admitted by the same role")

	// Narrowed again, after reads that the metadata entry remembers as
	// admitted: the next read is refused, with no upstream call.
	before := env.fake.Stats().Requests
	status, msg = env.write("roles/team-b", map[string]any{"task_name_globs": []any{"team-b-*"}})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, _ = env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusForbidden, status, "a narrowed role is matched afresh")
	status, msg = env.write("roles/team-b", map[string]any{"description": "unchanged scope"})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, _ = env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, before, env.fake.Stats().Requests)

	status, _ = env.del("roles/team-b")
	require.Equal(t, http.StatusNoContent, status)
	_, status, _ = env.read("roles/team-b/passphrase/" + taskA1)
	require.Equal(t, http.StatusNotFound, status)

	// Another node changed a role: Invalidate drops this node's copy.
	r := &role{TaskNameGlobs: []string{"*"}}
	entry, err := logical.StorageEntryJSON(roleStoragePrefix+"team-a", r)
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(context.Background(), entry))
	_, status, _ = env.read("roles/team-a/passphrase/" + testTask)
	require.Equal(t, http.StatusForbidden, status, "this node still has the old definition")
	env.b.invalidate(context.Background(), roleStoragePrefix+"team-a")
	_, status, msg = env.read("roles/team-a/passphrase/" + testTask)
	require.Equal(t, http.StatusOK, status, msg)

	// And narrowed by another node after this one admitted the task.
	r = &role{TaskNameGlobs: []string{"nothing-*"}}
	entry, err = logical.StorageEntryJSON(roleStoragePrefix+"team-a", r)
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(context.Background(), entry))
	env.b.invalidate(context.Background(), roleStoragePrefix+"team-a")
	_, status, _ = env.read("roles/team-a/passphrase/" + testTask)
	require.Equal(t, http.StatusForbidden, status)
}

func TestTaskMovedOutOfScopeDropsOutWithinTheTTLOrAtOnceAfterADelete(t *testing.T) {
	env := newRolesEnv(t)
	env.configure(map[string]any{"cache_ttl": "60s"})
	_, status, _ := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status)

	env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-web01", EnterpriseProjectID: "ep-team-b", State: "READY"})
	_, status, _ = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, "within cache_ttl the cached metadata decides")
	env.clock.Advance(61 * time.Second)
	_, status, _ = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusForbidden, status, "past cache_ttl the move is seen")

	env.fake.SetTaskMeta(taskA2, smsfake.TaskMeta{Name: "team-a-db01", EnterpriseProjectID: "ep-team-a", State: "READY"})
	_, status, _ = env.read("roles/team-a/passphrase/" + taskA2)
	require.Equal(t, http.StatusOK, status)
	env.fake.SetTaskMeta(taskA2, smsfake.TaskMeta{Name: "team-a-db01", EnterpriseProjectID: "ep-other", State: "READY"})
	env.del("passphrase/" + taskA2)
	_, status, _ = env.read("roles/team-a/passphrase/" + taskA2)
	require.Equal(t, http.StatusForbidden, status, "at once after a delete")
}

func TestScopeCheckFailuresKeepTheUpstreamContract(t *testing.T) {
	env := newRolesEnv(t)
	env.configure(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, Call: "task", Times: 1}))
	_, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "HTTP 503")
	require.Zero(t, env.fake.Stats().ByTask[taskA1], "no passphrase request without a scope decision")

	// Never cached: the next read asks again and succeeds.
	_, status, msg = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)

	// SMS refusing ShowTask for a task (403 or 400) is the scope's 403, the
	// same as for any task out of scope; the operator finds SMS's answer,
	// with the permission it names, in the log. A 401 refuses every task
	// alike, reveals nothing about this one, and stays a 502.
	for _, status := range []int{403, 400} {
		env.del("passphrase/" + taskA1)
		require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: status, Call: "task", Times: 1}))
		_, code, msg := env.read("roles/team-a/passphrase/" + taskA1)
		require.Equal(t, http.StatusForbidden, code, msg)
		require.Contains(t, msg, "not in the scope of role")
		require.NotContains(t, msg, "HTTP")
	}
	require.Contains(t, env.logs.String(), "sms:server:getTask")
	env.del("passphrase/" + taskA1)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 401, Call: "task", Times: 1}))
	_, status, msg = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusBadGateway, status, msg)

	// A ShowTask answer for another task is refused.
	env.del("passphrase/" + taskA1)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultMismatchedTaskID, Call: "task", Times: 1}))
	_, status, _ = env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusBadGateway, status)
}

func listRole(t *testing.T, env *testEnv, role string) (*logical.Response, int, string) {
	t.Helper()
	return env.request(logical.ListOperation, "roles/"+role+"/tasks", nil)
}

func TestRoleTasksListsTheScopeOnly(t *testing.T) {
	env := newRolesEnv(t)
	resp, status, msg := listRole(t, env, "team-a")
	require.Equal(t, http.StatusOK, status, msg)
	require.ElementsMatch(t, []string{taskA1, taskA2}, resp.Data["keys"])
	info := resp.Data["key_info"].(map[string]any)
	require.Equal(t, map[string]any{"name": "team-a-web01", "state": "SYNCING", "enterprise_project_id": "ep-team-a"}, info[taskA1])
	require.NotContains(t, fmt.Sprint(resp.Data), "pp-", "never a passphrase")
	require.Zero(t, env.fake.Stats().Requests, "no passphrase request")

	resp, status, msg = listRole(t, env, "team-b")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, []string{taskB1}, resp.Data["keys"])

	_, status, _ = listRole(t, env, "team-z")
	require.Equal(t, http.StatusNotFound, status)

	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 500, Call: "tasks"}))
	env.configure(map[string]any{"max_retries": 0})
	_, status, msg = listRole(t, env, "team-a")
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "HTTP 500")
}

func TestRoleTasksPagesThroughSMSAndStopsAtTheBound(t *testing.T) {
	tasks := map[string]string{}
	meta := map[string]smsfake.TaskMeta{}
	for i := 0; i < 450; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		tasks[id] = "p"
		name := "team-a-" + fmt.Sprint(i)
		if i%3 == 0 {
			name = "other-" + fmt.Sprint(i)
		}
		meta[id] = smsfake.TaskMeta{Name: name, EnterpriseProjectID: "ep-1", State: "READY"}
	}
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.Tasks, o.TaskMeta = tasks, meta })
	env.configure(nil)
	env.write("roles/a", map[string]any{"enterprise_project_ids": "ep-1", "task_name_globs": "team-a-*"})

	resp, status, msg := listRole(t, env, "a")
	require.Equal(t, http.StatusOK, status, msg)
	require.Len(t, resp.Data["keys"], 300, "names filtered in the engine")
	require.Empty(t, resp.Warnings)
	require.EqualValues(t, 3, env.fake.Stats().ListRequests, "450 tasks in pages of 200")

	// Past 10,000 tasks read, the list stops and says so.
	for i := 450; i < maxListedTasks+50; i++ {
		env.fake.SetTask(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "p")
	}
	env.write("roles/all", map[string]any{"task_name_globs": "*"})
	resp, status, msg = listRole(t, env, "all")
	require.Equal(t, http.StatusOK, status, msg)
	require.Len(t, resp.Data["keys"], maxListedTasks)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "incomplete")
}

// The fast path serves plain role reads itself; whatever the situation, its
// answer must be the framework's.
func TestRoleFastPathMatchesTheFramework(t *testing.T) {
	type outcome struct {
		status   int
		msg      string
		data     map[string]any
		warnings []string
	}
	run := func(env *testEnv, viaFramework bool, path string) outcome {
		req := &logical.Request{Operation: logical.ReadOperation, Path: path, Storage: env.storage, MountPoint: "sms/"}
		var resp *logical.Response
		var err error
		if viaFramework {
			resp, err = env.b.Backend.HandleRequest(context.Background(), req)
		} else {
			resp, err = env.b.HandleRequest(context.Background(), req)
		}
		status, msg := vaultStatus(req, resp, err)
		o := outcome{status: status, msg: stripRequestID(msg)}
		if resp != nil && !resp.IsError() {
			o.data, o.warnings = resp.Data, resp.Warnings
		}
		return o
	}
	scenarios := map[string]func(env *testEnv) string{
		"in scope, cold": func(env *testEnv) string { return "roles/team-a/passphrase/" + taskA1 },
		"in scope, cached": func(env *testEnv) string {
			env.read("roles/team-a/passphrase/" + taskA1)
			return "roles/team-a/passphrase/" + taskA1
		},
		"out of scope": func(env *testEnv) string { return "roles/team-a/passphrase/" + taskB1 },
		"missing task": func(env *testEnv) string { return "roles/team-a/passphrase/" + taskNo },
		"missing role": func(env *testEnv) string { return "roles/team-z/passphrase/" + taskA1 },
		"bad role":     func(env *testEnv) string { return "roles/te.am/passphrase/" + taskA1 },
		"bad task id":  func(env *testEnv) string { return "roles/team-a/passphrase/.." },
		"not configured": func(env *testEnv) string {
			env.del("config")
			return "roles/team-a/passphrase/" + taskA1
		},
		"upstream down": func(env *testEnv) string {
			env.configure(map[string]any{"max_retries": 0})
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 500}))
			return "roles/team-a/passphrase/" + taskA1
		},
	}
	for name, setup := range scenarios {
		t.Run(name, func(t *testing.T) {
			fast, slow := newRolesEnv(t), newRolesEnv(t)
			path := setup(fast)
			setup(slow)
			require.Equal(t, run(slow, true, path), run(fast, false, path))
		})
	}
}

// From the review: scope is never decided on expired metadata, even when
// stale_if_error would serve an expired passphrase.
func TestScopeIsNeverDecidedOnStaleMetadata(t *testing.T) {
	env := newRolesEnv(t)
	env.configure(map[string]any{"cache_ttl": "60s", "stale_if_error": "1h", "max_retries": 0})
	_, status, _ := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status)

	env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-web01", EnterpriseProjectID: "ep-team-b", State: "READY"})
	env.clock.Advance(61 * time.Second)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}))
	resp, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusBadGateway, status, "fail closed: %s", msg)
	require.Nil(t, resp)
	// The direct path may still serve the expired passphrase, as configured.
	resp, status, _ = env.readPassphrase(taskA1)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, resp.Warnings, 1)
}

// From the review: a task that does not exist costs what a task out of
// scope costs, on the second probe as on the first.
func TestMissingAndOutOfScopeTasksCostTheSame(t *testing.T) {
	env := newRolesEnv(t)
	for round := 1; round <= 3; round++ {
		for _, id := range []string{taskB1, taskNo} {
			_, status, _ := env.read("roles/team-a/passphrase/" + id)
			require.Equal(t, http.StatusForbidden, status)
		}
		require.EqualValues(t, 2, env.fake.Stats().TaskRequests, "round %d: one ShowTask per id, then both cached", round)
	}
	require.EqualValues(t, 2, env.cacheStats()["task_entries"])
}

// From the review: names that name no role cost no memory, however many
// are tried (Vault runs the existence check before its ACL, for any token).
func TestProbingRoleNamesCostsNoMemory(t *testing.T) {
	env := newRolesEnv(t)
	for i := 0; i < 500; i++ {
		name := fmt.Sprintf("probe-%d", i)
		_, _, err := env.b.HandleExistenceCheck(context.Background(), &logical.Request{
			Operation: logical.CreateOperation, Path: "roles/" + name, Storage: env.storage})
		require.NoError(t, err)
		env.read("roles/" + name + "/passphrase/" + taskA1)
	}
	snap := env.b.roles.known.Load()
	require.LessOrEqual(t, len(snap.names), 2, "only roles that exist are remembered")
}

// From the review: two partial updates of a role, at the same time, cannot
// undo each other.
func TestConcurrentRoleUpdatesKeepANarrowing(t *testing.T) {
	env := newRolesEnv(t)
	for round := 0; round < 20; round++ {
		env.write("roles/team-a", map[string]any{"enterprise_project_ids": []any{"ep-team-a", "ep-team-b"}})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			env.write("roles/team-a", map[string]any{"enterprise_project_ids": []any{"ep-team-a"}})
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				env.write("roles/team-a", map[string]any{"description": fmt.Sprint("edit ", i)})
			}
		}()
		wg.Wait()
		resp, _, _ := env.read("roles/team-a")
		require.Equal(t, []string{"ep-team-a"}, resp.Data["enterprise_project_ids"], "round %d", round)
	}
}

// From the review: a stored role without constraints (a future version's,
// a hand restore) allows nothing.
func TestStoredRoleWithoutConstraintsAllowsNothing(t *testing.T) {
	env := newRolesEnv(t)
	entry := &logical.StorageEntry{Key: roleStoragePrefix + "loose", Value: []byte(`{"task_ids":["x"],"description":"?"}`)}
	require.NoError(t, env.storage.Put(context.Background(), entry))
	_, status, _ := env.read("roles/loose/passphrase/" + taskB1)
	require.Equal(t, http.StatusForbidden, status)
}

// From the review: a count that undercounts does not cut a role's list
// short; the list says SMS's count disagreed.
func TestRoleTasksKeepPagingPastALowCount(t *testing.T) {
	tasks := map[string]string{}
	for i := 0; i < 201; i++ {
		tasks[fmt.Sprintf("00000000-0000-4000-8000-%012d", i)] = "p"
	}
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.Tasks = tasks })
	env.configure(nil)
	env.write("roles/all", map[string]any{"task_name_globs": "*"})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultUndercount, Call: "tasks"}))
	resp, status, msg := listRole(t, env, "all")
	require.Equal(t, http.StatusOK, status, msg)
	require.Len(t, resp.Data["keys"], 201)
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "count")
}

func TestRoleTasksStripControlCharactersFromNames(t *testing.T) {
	env := newRolesEnv(t)
	env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-\x1b[31mweb\x00", EnterpriseProjectID: "ep-team-a", State: "READY\n"})
	resp, status, msg := listRole(t, env, "team-a")
	require.Equal(t, http.StatusOK, status, msg)
	info := resp.Data["key_info"].(map[string]any)[taskA1].(map[string]any)
	require.Equal(t, "team-a-\uFFFD[31mweb\uFFFD", info["name"], "shown as U+FFFD (issue 17)")
	require.Equal(t, "READY", info["state"])
}
