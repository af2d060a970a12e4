package sms

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Two roles must never act under one session name: Huawei's audit is the
// only record of which role read what.
func TestAttackAgencySessionNamesNeverCollide(t *testing.T) {
	env := newAgencyEnv(t)
	for _, role := range []string{"abc", "vault-abc"} {
		status, msg := env.write("roles/"+role, map[string]any{"agency_name": agencyA, "agency_domain_name": teamAAcct})
		require.Equal(t, http.StatusNoContent, status, msg)
	}
	a, _, _ := env.read("roles/abc")
	b, _, _ := env.read("roles/vault-abc")
	require.NotEqual(t, a.Data["agency_session_name"], b.Data["agency_session_name"],
		"roles abc and vault-abc act under one session name in Huawei's audit")
}

// A role deleted during a read must not leave agency credentials behind:
// they are "dropped when the role changes".
func TestAttackDeletedRoleLeavesNoAgencyClient(t *testing.T) {
	env := newAgencyEnv(t)
	var once atomic.Bool
	env.b.fetchHook = func() {
		if once.CompareAndSwap(false, true) {
			status, msg := env.del("roles/team-a")
			require.Equal(t, http.StatusNoContent, status, msg)
		}
	}
	_, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusNotFound, status, msg)
	env.b.fetchHook = nil

	conn := env.b.conn.Load()
	require.NotNil(t, conn)
	conn.agencies.mu.Lock()
	left := len(conn.agencies.m)
	conn.agencies.mu.Unlock()
	require.Zero(t, left, "the deleted role's agency client (and its temporary credentials) outlive the role")
}

// An IAM refusal of assume_role is about the engine's identity, never
// about the task: once IAM allows it again, the task is readable, without
// waiting for cache_ttl to forget an "absent" marker.
func TestAttackAssumeRoleRefusalIsNotCachedAsAbsentTask(t *testing.T) {
	env := newAgencyEnv(t)
	status, msg := env.write("config", map[string]any{"password": testPassword, "cache_ttl": "1h"})
	require.Equal(t, http.StatusNoContent, status, msg)
	require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: agencyA, Domain: teamAAcct, Trusted: []string{"someone-else"}}))
	_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusBadGateway, status, msg)

	require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: agencyA, Domain: teamAAcct, Trusted: []string{rootAccount},
		Permissions: &smsfake.Permissions{Actions: []string{"sms:server:*"}, EnterpriseProjects: []string{"ep-a"}}}))
	env.clock.Advance(maxRefusalBackoffForTest)
	resp, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, passOfA, resp.Data["passphrase"])
}

const maxRefusalBackoffForTest = 6 * time.Minute

// Every derived session name stays valid and distinct, with the names that
// qualify as they are.
func TestAttackSessionNamesOfPrefixedRolesStayDistinct(t *testing.T) {
	names := []string{"abc", "vault-abc", "Vault-abc", "vault-vault-abc", "9lives", "vault-9lives", "team-a",
		"vault-" + strings.Repeat("x", 58), "vault-" + strings.Repeat("x", 57) + "y", strings.Repeat("1", 64)}
	seen := map[string]string{}
	for _, role := range names {
		n := sessionUserName(role)
		require.Regexp(t, `^[A-Za-z][A-Za-z0-9_-]{4,63}$`, n, role)
		require.NotContains(t, seen, n, "roles %q and %q share a session name", seen[n], role)
		seen[n] = role
	}
	require.Equal(t, "team-a", sessionUserName("team-a"))
}

// The cache space of an agency no role names any more must go: operators
// who create and delete roles (one per deployment, say) must not grow the
// engine's memory with every agency ever named. A Go map never shrinks, so
// a space that once held cache_max_entries tasks keeps that memory for as
// long as it exists.
func TestAttackCacheSpaceOfAnAgencyNoRoleNamesIsFreed(t *testing.T) {
	env := newAgencyEnv(t)
	for i := 0; i < 3; i++ {
		name := "deploy-" + strings.Repeat("x", i+1)
		agency := "agency-" + name
		require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: agency, Domain: teamAAcct, Trusted: []string{rootAccount},
			Permissions: &smsfake.Permissions{Actions: []string{"sms:server:*"}, EnterpriseProjects: []string{"ep-a"}}}))
		status, msg := env.write("roles/"+name, map[string]any{"agency_name": agency, "agency_domain_name": teamAAcct})
		require.Equal(t, http.StatusNoContent, status, msg)
		_, status, msg = env.read("roles/" + name + "/passphrase/" + taskOfA)
		require.Equal(t, http.StatusOK, status, msg)
		status, msg = env.del("roles/" + name)
		require.Equal(t, http.StatusNoContent, status, msg)
	}
	env.clock.Advance(24 * time.Hour)
	require.NoError(t, env.b.periodic(t.Context(), nil))
	env.b.cache.mu.Lock()
	spaces := len(env.b.cache.spaces)
	env.b.cache.mu.Unlock()
	// team-a and team-b remain.
	require.Equal(t, 2, spaces, "cache spaces of agencies that no role names are never freed")
}

// SMS refusing an agency's call is about the agency's policy: the error
// must say so, and never have the operator grant SMS rights to the engine's
// own credential, which the least-privilege deployment keeps without any.
func TestAttackAgencyRefusalPointsAtTheAgencyNotTheEngineConfig(t *testing.T) {
	env := newAgencyEnv(t)
	require.NoError(t, env.fake.SetAgency(smsfake.Agency{Name: "auditor", Domain: teamAAcct, Trusted: []string{rootAccount},
		Permissions: &smsfake.Permissions{Actions: []string{"sms:server:getTask"}}}))
	status, msg := env.write("roles/auditor", map[string]any{"agency_name": "auditor", "agency_domain_name": teamAAcct})
	require.Equal(t, http.StatusNoContent, status, msg)
	for _, path := range []string{"roles/auditor/passphrase/" + taskOfA, "roles/auditor/certkey/" + taskOfA} {
		_, status, msg = env.read(path)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "SMS.9004")
		require.Contains(t, msg, `agency "auditor"`)
		require.NotContains(t, msg, "engine's config")
	}
	_, status, msg = env.request("list", "roles/auditor/tasks", nil)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, `agency "auditor"`)
	require.NotContains(t, msg, "engine's config")

	// Direct reads keep pointing at the engine's own credential.
	_, status, msg = env.readPassphrase(taskOfA)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "engine's config")
}

// agency_duration written to a role without an agency is bad input, a 400
// naming the field, not a 204 that drops it.
func TestAttackAgencyDurationWithoutAgencyIsRefused(t *testing.T) {
	env := newAgencyEnv(t)
	status, msg := env.write("roles/plain", map[string]any{"task_name_globs": "web-*"})
	require.Equal(t, http.StatusNoContent, status, msg)
	status, msg = env.write("roles/plain", map[string]any{"agency_duration": "2h"})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "agency_duration")
	status, msg = env.write("roles/new-plain", map[string]any{"task_name_globs": "web-*", "agency_duration": "2h"})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "agency_duration")
}

// A role write drops that role's agency credentials, and must not fail the
// reads of another role that shares the answer in flight: roles naming the
// same agency share their fetches (one upstream call per task and
// identity), so closing the changed role's client under a shared fetch
// fails the other team's read.
func TestAttackRoleWriteDoesNotFailAnotherRolesSharedFetch(t *testing.T) {
	env := newAgencyEnv(t)
	status, msg := env.write("roles/team-a-too", map[string]any{"agency_name": agencyA, "agency_domain_name": teamAAcct})
	require.Equal(t, http.StatusNoContent, status, msg)
	// The first assume_role is held until released.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: http.StatusCreated, Target: "iam",
		Call: "security-token", Body: smsfake.BodyHold, Times: 1}))

	misses := func() uint64 { return env.b.cache.stats[kindTask].misses.Load() }
	first := make(chan int, 1)
	go func() {
		_, status, _ := env.read("roles/team-a/passphrase/" + taskOfA)
		first <- status
	}()
	require.Eventually(t, func() bool { return assumeRoleCalls(env) == 1 }, 10*time.Second, time.Millisecond)
	type result struct {
		status int
		msg    string
	}
	second := make(chan result, 1)
	go func() {
		_, status, msg := env.read("roles/team-a-too/passphrase/" + taskOfA)
		second <- result{status, msg}
	}()
	// team-a-too's read has joined team-a's fetch of the task's metadata.
	require.Eventually(t, func() bool { return misses() == 2 }, 10*time.Second, time.Millisecond)

	status, msg = env.write("roles/team-a", map[string]any{"description": "unrelated change"})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.fake.Release()

	require.Equal(t, http.StatusOK, <-first)
	got := <-second
	require.Equal(t, http.StatusOK, got.status, "team-a-too's read failed because team-a was written: %s", env.safe(got.msg))
}
