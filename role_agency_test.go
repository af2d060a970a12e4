package sms

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The least-privilege deployment of the agency tests: the engine's own IAM
// user may assume agencies and do nothing in SMS; each team's agency lives
// in the team's own account and allows SMS on the team's enterprise project.
const (
	rootAccount = "migration-hub"
	teamAAcct   = "team-a-account"
	teamBAcct   = "team-b-account"
	agencyA     = "sms-reader-a"
	agencyB     = "sms-reader-b"
	taskOfA     = "a0000000-0000-4000-8000-00000000000a"
	taskOfB     = "b0000000-0000-4000-8000-00000000000b"
	passOfA     = "pp-team-a-4d3c2b1a0f9e8d7c"
	passOfB     = "pp-team-b-9e8d7c6b5a4f3e2d"
)

func newAgencyEnv(t *testing.T) *testEnv {
	t.Helper()
	env := newTestEnvWith(t, func(o *smsfake.Options) {
		o.Users = []smsfake.User{{Domain: rootAccount, Name: testUser, Password: testPassword}}
		o.UserPermissions = map[string]*smsfake.Permissions{rootAccount + "/" + testUser: {AgentOperator: true}}
		o.Tasks = map[string]string{taskOfA: passOfA, taskOfB: passOfB}
		o.TaskMeta = map[string]smsfake.TaskMeta{
			taskOfA: {Name: "web-a", EnterpriseProjectID: "ep-a", State: "READY"},
			taskOfB: {Name: "web-b", EnterpriseProjectID: "ep-b", State: "READY"},
		}
		o.Agencies = []smsfake.Agency{
			{Name: agencyA, Domain: teamAAcct, Trusted: []string{rootAccount},
				Permissions: &smsfake.Permissions{Actions: []string{"sms:server:*"}, EnterpriseProjects: []string{"ep-a"}}},
			{Name: agencyB, Domain: teamBAcct, Trusted: []string{rootAccount},
				Permissions: &smsfake.Permissions{Actions: []string{"sms:server:*"}, EnterpriseProjects: []string{"ep-b"}}},
		}
	})
	status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "iam_endpoint": env.srv.URL,
		"username": testUser, "password": testPassword, "domain_name": rootAccount})
	require.Equal(t, http.StatusNoContent, status, msg)
	for role, fields := range map[string]map[string]any{
		"team-a": {"agency_name": agencyA, "agency_domain_name": teamAAcct, "task_name_globs": "*"},
		"team-b": {"agency_name": agencyB, "agency_domain_id": smsfake.DomainID(teamBAcct)},
	} {
		status, msg := env.write("roles/"+role, fields)
		require.Equal(t, http.StatusNoContent, status, msg)
	}
	return env
}

func assumeRoleCalls(env *testEnv) int64 { return env.fake.Stats().IAMKeyCalls["security-token"] }

func TestAgencyRolesReadOnlyWhatTheirAgencyAllows(t *testing.T) {
	env := newAgencyEnv(t)

	resp, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, passOfA, resp.Data["passphrase"])
	resp, status, msg = env.read("roles/team-b/passphrase/" + taskOfB)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, passOfB, resp.Data["passphrase"])

	// team-a's globs admit team-b's task, but its agency does not: the
	// out-of-scope 403, and no passphrase call.
	before := env.fake.Stats().ByTask[taskOfB]
	_, status, msg = env.read("roles/team-a/passphrase/" + taskOfB)
	require.Equal(t, http.StatusForbidden, status, msg)
	require.Contains(t, msg, `not in the scope of role "team-a"`)
	require.Equal(t, before, env.fake.Stats().ByTask[taskOfB])

	// The mount's own identity has no SMS right: direct reads are SMS's
	// refusal, a 502 naming its code.
	_, status, msg = env.readPassphrase(taskOfA)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "SMS.9004")

	// Huawei's trace shows every successful SMS call under a role's agency
	// and session name.
	for _, c := range env.fake.Calls() {
		if c.Status == http.StatusOK {
			require.Equal(t, "agency", c.Kind, "%+v", c)
			switch c.TaskID {
			case taskOfA:
				require.Equal(t, agencyA+"/team-a", c.Name+"/"+c.Session)
			case taskOfB:
				require.Equal(t, agencyB+"/team-b", c.Name+"/"+c.Session)
			}
		}
	}

	// Listing through the agency shows the agency's tasks only.
	keys := listKeys(t, env, "team-a")
	require.Equal(t, []string{taskOfA}, keys)
	resp, status, msg = env.read("roles/team-a/certkey/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.NotEmpty(t, resp.Data["cert"])
}

func listKeys(t *testing.T, env *testEnv, role string) []string {
	t.Helper()
	resp, status, msg := listRole(t, env, role)
	require.Equal(t, http.StatusOK, status, msg)
	keys, _ := resp.Data["keys"].([]string)
	return keys
}

func TestCachedAnswersNeverCrossIdentities(t *testing.T) {
	env := newAgencyEnv(t)
	// A second agency for team A's account that allows the same project.
	require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: "auditor", Domain: teamAAcct, Trusted: []string{rootAccount},
		Permissions: &smsfake.Permissions{Actions: []string{"sms:server:getTask"}}}))
	status, msg := env.write("roles/auditor", map[string]any{"agency_name": "auditor", "agency_domain_name": teamAAcct})
	require.Equal(t, http.StatusNoContent, status, msg)
	status, msg = env.write("roles/team-a-too", map[string]any{"agency_name": agencyA, "agency_domain_name": teamAAcct})
	require.Equal(t, http.StatusNoContent, status, msg)

	_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 1, env.fake.Stats().ByTask[taskOfA])

	// Another agency: IAM decides its first access, and refuses it.
	_, status, msg = env.read("roles/auditor/passphrase/" + taskOfA)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "SMS.9004")
	require.EqualValues(t, 2, env.fake.Stats().ByTask[taskOfA])
	// The mount's own credential: never served what an agency fetched.
	_, status, _ = env.readPassphrase(taskOfA)
	require.Equal(t, http.StatusBadGateway, status)
	// A role naming the same agency shares its answers.
	_, status, msg = env.read("roles/team-a-too/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 3, env.fake.Stats().ByTask[taskOfA])

	// An operator's delete evicts the task from every identity's cache.
	status, msg = env.del("passphrase/" + taskOfA)
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 4, env.fake.Stats().ByTask[taskOfA])
}

func TestAgencyCredentialsAreSharedRenewedAndDropped(t *testing.T) {
	env := newAgencyEnv(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
			require.Equal(t, http.StatusOK, status, msg)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, assumeRoleCalls(env), "concurrent readers share one assume_role")
	require.EqualValues(t, 1, env.fake.Stats().ByTask[taskOfA], "and one passphrase call")

	// Expired credentials: SMS answers 401, the engine obtains new ones once.
	env.fake.ExpireTemporaryKeys()
	env.b.cache.flush()
	_, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 2, assumeRoleCalls(env))

	// A role change drops its credentials: the next fetch assumes again.
	status, msg = env.write("roles/team-a", map[string]any{"description": "changed"})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.b.cache.flush()
	_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 3, assumeRoleCalls(env))
}

func TestAgencyRefusalsAre502NamingIAMAndRemembered(t *testing.T) {
	env := newAgencyEnv(t)
	for _, tc := range []struct {
		name     string
		change   func()
		teamBToo bool // the refusal is of the engine's identity, not of one agency
	}{
		{"not trusted", func() {
			require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: agencyA, Domain: teamAAcct, Trusted: []string{"someone-else"}}))
		}, false},
		{"unknown agency", func() { env.fake.DeleteAgency(teamAAcct, agencyA) }, false},
		{"no operator right", func() { env.fake.SetPermissions(rootAccount, testUser, &smsfake.Permissions{}) }, true},
	} {
		name, change := tc.name, tc.change
		t.Run(name, func(t *testing.T) {
			change()
			defer func() {
				require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: agencyA, Domain: teamAAcct, Trusted: []string{rootAccount},
					Permissions: &smsfake.Permissions{Actions: []string{"sms:server:*"}, EnterpriseProjects: []string{"ep-a"}}}))
				env.fake.SetPermissions(rootAccount, testUser, &smsfake.Permissions{AgentOperator: true})
			}()
			// A config write drops every credential and the remembered refusal.
			status, msg := env.write("config", map[string]any{"password": testPassword, "cache_ttl": 0})
			require.Equal(t, http.StatusNoContent, status, msg)
			_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
			require.Equal(t, http.StatusBadGateway, status, msg)
			require.True(t, strings.HasPrefix(msg, "IAM "), msg)
			require.Contains(t, msg, agencyA)
			calls := assumeRoleCalls(env)
			for i := 0; i < 5; i++ {
				_, status, _ = env.read("roles/team-a/passphrase/" + taskOfA)
				require.Equal(t, http.StatusBadGateway, status)
			}
			require.Equal(t, calls, assumeRoleCalls(env), "a refusal is remembered")
			// Another team's agency is not affected, unless the engine's
			// own identity lost its right to assume any.
			_, status, msg = env.read("roles/team-b/passphrase/" + taskOfB)
			if tc.teamBToo {
				require.Equal(t, http.StatusBadGateway, status, msg)
				require.Contains(t, msg, "Agent Operator")
			} else {
				require.Equal(t, http.StatusOK, status, msg)
			}
		})
	}
}

func TestAgencyRoleFieldsAreValidatedAndReadBack(t *testing.T) {
	env := newAgencyEnv(t)
	for name, tc := range map[string]struct {
		data map[string]any
		want string
	}{
		"no account":       {map[string]any{"agency_name": "x"}, "exactly one of agency_domain_id and agency_domain_name"},
		"two accounts":     {map[string]any{"agency_name": "x", "agency_domain_id": "d1", "agency_domain_name": "d"}, "exactly one"},
		"short duration":   {map[string]any{"agency_name": "x", "agency_domain_id": "d1", "agency_duration": "10m"}, "agency_duration"},
		"long duration":    {map[string]any{"agency_name": "x", "agency_domain_id": "d1", "agency_duration": "25h"}, "agency_duration"},
		"account, no name": {map[string]any{"agency_domain_id": "d1", "task_name_globs": "*"}, "need agency_name"},
		"bad account id":   {map[string]any{"agency_name": "x", "agency_domain_id": "a b"}, "agency_domain_id must"},
		"nothing at all":   {map[string]any{"description": "x"}, "agency_name"},
	} {
		t.Run(name, func(t *testing.T) {
			status, msg := env.write("roles/new-role", tc.data)
			require.Equal(t, http.StatusBadRequest, status, msg)
			require.Contains(t, msg, tc.want)
		})
	}

	resp, status, msg := env.read("roles/team-b")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, agencyB, resp.Data["agency_name"])
	require.EqualValues(t, 3600, resp.Data["agency_duration"])
	require.Equal(t, "team-b", resp.Data["agency_session_name"])
	require.Equal(t, smsfake.DomainID(teamBAcct), resp.Data["agency_domain_id"])

	// Removing the agency of a role that has no other bound is refused.
	status, msg = env.write("roles/team-b", map[string]any{"agency_name": "", "agency_domain_id": ""})
	require.Equal(t, http.StatusBadRequest, status, msg)
	status, msg = env.write("roles/team-b", map[string]any{"agency_name": "", "agency_domain_id": "", "enterprise_project_ids": "ep-b"})
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, _, _ = env.read("roles/team-b")
	require.Equal(t, "", resp.Data["agency_name"])
}

func TestSessionUserNamesAreValidAndDistinct(t *testing.T) {
	long := strings.Repeat("x", 64)
	longToo := strings.Repeat("x", 63) + "y"
	for role, want := range map[string]string{
		"team-a":   "team-a",
		"abc":      "vault-abc",
		"migrator": "migrator",
		"9lives":   "vault-9lives",
		"_x":       "vault-_x",
		long:       long,
	} {
		require.Equal(t, want, sessionUserName(role), role)
	}
	seen := map[string]string{}
	for _, role := range []string{"1" + long[:63], "1" + longToo[:62] + "z", "a", "ab", "-" + long[:63]} {
		n := sessionUserName(role)
		require.Regexp(t, `^[A-Za-z][A-Za-z0-9_-]{4,63}$`, n, role)
		require.NotContains(t, seen, n, "two roles share a session name")
		seen[n] = role
	}
}

// A role write drops the role's agency credentials, but a read in flight,
// waiting on IAM for them, still gets them: the call is not cancelled under it.
func TestRoleWriteDuringAnAssumeRoleInFlightFailsNoRead(t *testing.T) {
	env := newAgencyEnv(t)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Target: "iam", Call: "security-token",
		Delay: smsfake.Duration(300 * time.Millisecond), Times: 1}))
	done := make(chan string, 1)
	go func() {
		_, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
		done <- fmt.Sprint(status, " ", msg)
	}()
	require.Eventually(t, func() bool { return assumeRoleCalls(env) == 1 }, 10*time.Second, time.Millisecond)
	status, msg := env.write("roles/team-a", map[string]any{"description": "changed while a read waits on IAM"})
	require.Equal(t, http.StatusNoContent, status, msg)
	require.Equal(t, "200 ", <-done)
	// The assume_role in flight was not cancelled under it: no upstream
	// call of the read failed (the changed role then has credentials of
	// its own).
	require.Zero(t, env.b.stats.errors.Load(), "an upstream call failed: %s", env.safe(env.logs.String()))
}
