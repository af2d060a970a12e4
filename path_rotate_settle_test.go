package sms

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// An answer that did not come is not a no. These tests send each IAM call
// that changes something (the password change, a key's creation and
// deletion) into a timeout, a reset and a 5xx after the change was applied,
// and into a change applied late, and check that the engine neither loses
// its credential nor locks its IAM user out.

// settleRollback runs Vault's rollback over every write-ahead log entry, as
// it would for entries older than walRollbackMinAge.
func settleRollback(t *testing.T, env *testEnv) {
	t.Helper()
	resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err, "%v", resp)
}

func walCount(t *testing.T, env *testEnv) int {
	t.Helper()
	ids, err := env.storage.List(context.Background(), "wal/")
	require.NoError(t, err)
	return len(ids)
}

var lostPasswordAnswers = []struct {
	name    string
	fault   smsfake.Fault
	applied bool
}{
	{"applied after the answer's deadline", smsfake.Fault{Mode: smsfake.FaultApplyLate, Delay: smsfake.Duration(50 * time.Millisecond)}, true},
	{"504 at once, applied later", smsfake.Fault{Mode: smsfake.FaultApplyLate, Status: 504, Delay: smsfake.Duration(50 * time.Millisecond)}, true},
	{"applied behind a 504", smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Status: 504}, true},
	{"applied behind a 502", smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Status: 502}, true},
	{"applied, answer reset", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 204, Body: smsfake.BodyDrop}, true},
	{"reset before IAM sees it", smsfake.Fault{Mode: smsfake.FaultResetBeforeHeaders}, false},
	{"503, not applied", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}, false},
}

// Defect 1: a password change whose answer is lost, or a 5xx, is unknown: the
// log entry stays, no login is made with either password, and a rollback
// no sooner than walRollbackMinAge settles it by logging in with the old
// password first.
func TestPasswordChangeWithoutAnAnswerIsSettledLaterByEvidence(t *testing.T) {
	for _, tc := range lostPasswordAnswers {
		t.Run(tc.name, func(t *testing.T) {
			// IAM locks the user after two failed logins in a row.
			env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 2 })
			env.configurePassword(map[string]any{"max_retries": 0, "request_timeout": 1})
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
			f := tc.fault
			f.Target, f.Call, f.Times = "iam", "change-password", 1
			require.NoError(t, env.fake.AddFault(f))

			_, status, msg = env.rotate()
			require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
			require.Contains(t, msg, "the rotation is unsettled", env.safe(msg))
			require.Equal(t, 1, walCount(t, env), "the log entry, with the new password, stays")
			if tc.applied {
				require.Eventually(t, func() bool { return env.fake.Password(testDomain, testUser) != testPassword },
					5*time.Second, 5*time.Millisecond, "IAM applies the change")
			}
			cfg, status, msg := env.read("config")
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, true, cfg.Data["rotation_unsettled"])
			require.NotEmpty(t, cfg.Data["rotation_settle_after"])

			// Until settled: no login with either password, reads 503 when
			// they need one.
			tokens := env.fake.Stats().IAMTokenRequests
			for i := 0; i < 3; i++ {
				_, status, msg = env.readPassphrase(testTask)
				if tc.applied {
					require.Equal(t, http.StatusServiceUnavailable, status, env.safe(msg))
					require.Contains(t, msg, "rotation is being settled")
				} else {
					require.Equal(t, http.StatusOK, status, "the token held still works: %s", env.safe(msg))
				}
				env.clock.Advance(15 * time.Second)
			}
			require.Equal(t, tokens, env.fake.Stats().IAMTokenRequests, "no login while unsettled")
			settleRollback(t, env) // earlier than the log entry allows
			require.Equal(t, 1, walCount(t, env))
			require.Equal(t, tokens, env.fake.Stats().IAMTokenRequests, "a rollback too early settles nothing")

			env.clock.Advance(walRollbackMinAge)
			settleRollback(t, env)
			require.Zero(t, walCount(t, env), "settled")
			stored, err := loadConfig(context.Background(), env.storage)
			require.NoError(t, err)
			require.Equal(t, env.fake.Password(testDomain, testUser), string(stored.Password), "the password IAM has is stored")
			_, status, msg = env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, env.safe(msg))
			require.Zero(t, env.fake.Stats().IAMLockouts)
			require.LessOrEqual(t, env.fake.Stats().IAMLoginFailures, int64(1))
			cfg, _, _ = env.read("config")
			require.Equal(t, false, cfg.Data["rotation_unsettled"])
		})
	}
}

// While unsettled, a read is served from the cache and stale_if_error; one
// with nothing cached fails with a 503 that says why.
func TestReadsWhileAPasswordRotationIsUnsettled(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0, "cache_ttl": 30, "stale_if_error": 3600})
	env.fake.SetTask("t-other", "other-passphrase")
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "change-password", Times: 1}))
	_, status, _ = env.rotate()
	require.Equal(t, http.StatusBadGateway, status)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "fresh in the cache: %s", msg)
	env.clock.Advance(time.Minute)
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "stale_if_error: %s", env.safe(msg))
	require.NotEmpty(t, resp.Warnings)
	_, status, msg = env.readPassphrase("t-other")
	require.Equal(t, http.StatusServiceUnavailable, status, env.safe(msg))
	require.Contains(t, msg, "rotation is being settled")
}

// Defect 2: scheduled rotations that keep failing, in every way an IAM call
// can fail, never make two failed logins without a successful one between
// them (the stand-in locks the user after two), and back off.
func TestFailingScheduledRotationsNeverLockTheUserOut(t *testing.T) {
	every := []smsfake.Fault{
		{Mode: smsfake.FaultResetBeforeHeaders},
		{Mode: smsfake.FaultAppliedStatus, Status: 504},
		{Mode: smsfake.FaultStatus, Status: 204, Body: smsfake.BodyDrop},
		{Mode: smsfake.FaultStatus, Status: 503},
		{Mode: smsfake.FaultResetBeforeHeaders},
		{Mode: smsfake.FaultApplyLate},
	}
	for _, tc := range []struct {
		name   string
		faults []smsfake.Fault
	}{
		{"resets: IAM never sees the change", []smsfake.Fault{{Mode: smsfake.FaultResetBeforeHeaders}}},
		{"every way", every},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 2; o.TokenLifetime = 24 * time.Hour })
			env.configurePassword(map[string]any{"rotation_period": "1m", "max_retries": 0, "request_timeout": 1})
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
			start := env.clock.Now()
			sawBackoff := false
			for env.clock.Now().Sub(start) < 3*time.Hour {
				// The next change attempt meets the next fault.
				env.fake.ClearFaults()
				f := tc.faults[int(env.fake.Stats().IAMKeyCalls["change-password"])%len(tc.faults)]
				f.Target, f.Call = "iam", "change-password"
				require.NoError(t, env.fake.AddFault(f))
				env.clock.Advance(time.Minute)
				before := env.fake.Stats()
				require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
				if f.Mode == smsfake.FaultApplyLate && env.fake.Stats().IAMKeyCalls["change-password"] > before.IAMKeyCalls["change-password"] {
					// "Late" is after the answer's deadline but before the
					// settle, which waits walRollbackMinAge of real time:
					// the fake clock skips that wait, so wait for the change
					// to land instead (a change applied after the settle is
					// the limit the README's rotation section names).
					require.Eventually(t, func() bool { return env.fake.Stats().IAMAppliedLate > before.IAMAppliedLate },
						10*time.Second, 5*time.Millisecond)
				}
				settleRollback(t, env)
				require.Zero(t, env.fake.Stats().IAMLockouts, "locked out after %d minutes", int(env.clock.Now().Sub(start).Minutes()))
				cfg, _, _ := env.read("config")
				if until, _ := cfg.Data["rotation_backoff_until"].(string); until != "" {
					sawBackoff = true
					require.NotEmpty(t, cfg.Data["last_rotation_error"])
				}
			}
			st := env.fake.Stats()
			t.Logf("change attempts %d, failed logins %d, tokens %d in 3 hours", st.IAMKeyCalls["change-password"], st.IAMLoginFailures, st.IAMTokensIssued)
			require.True(t, sawBackoff, "failed scheduled rotations back off, and the config read says until when")
			require.GreaterOrEqual(t, st.IAMKeyCalls["change-password"], int64(len(tc.faults)), "every fault met")

			env.fake.ClearFaults()
			env.clock.Advance(walRollbackMinAge)
			settleRollback(t, env)
			env.fake.RevokeTokens()
			_, status, msg = env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, "the engine still logs in: %s", env.safe(msg))
			require.Zero(t, env.fake.Stats().IAMLockouts)
		})
	}
}

// The schedule's backoff doubles, is capped, and a config write resets it.
func TestScheduledRotationBackoff(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"rotation_period": "1m", "max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password", Status: 400}))
	env.clock.Advance(time.Minute)
	var waits []time.Duration
	for len(waits) < 9 {
		require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
		cfg, _, _ := env.read("config")
		field, _ := cfg.Data["rotation_backoff_until"].(string)
		until, err := time.Parse(time.RFC3339, field)
		require.NoError(t, err)
		waits = append(waits, until.Sub(env.clock.Now()).Round(time.Minute))
		env.clock.Advance(until.Sub(env.clock.Now()) + time.Second) // the field is to the second
	}
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		32 * time.Minute, time.Hour, time.Hour, time.Hour}, waits)
	status, msg := env.write("config", map[string]any{"stale_if_error": 60})
	require.Equal(t, http.StatusNoContent, status, msg)
	cfg, _, _ := env.read("config")
	require.Empty(t, cfg.Data["rotation_backoff_until"])
	require.Empty(t, cfg.Data["last_rotation_error"])
}

// Defect 3: the "no logins" state comes from the log entry in storage: a
// client built after an unrelated config write, another node, and a plugin
// reload all make no login while the change is unknown.
func TestUnsettledPasswordChangeStopsLoginsOnEveryClient(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password",
		Status: 204, Body: smsfake.BodyDrop, Times: 1}))
	// IAM cannot say at once either (so that no version of the engine can
	// settle it on the spot).
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "token", Status: 503, Times: 1}))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	env.fake.ClearFaults()
	tokens := env.fake.Stats().IAMTokenRequests

	status, msg = env.write("config", map[string]any{"stale_if_error": 60})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusServiceUnavailable, status, "after a config write: %s", env.safe(msg))

	standby := secondNode(t, env, consts.ReplicationPerformanceStandby)
	_, status, msg = requestOn(standby, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "on another node: %s", env.safe(msg))

	reloaded := secondNode(t, env, consts.ReplicationUnknown) // the plugin process started again
	_, status, msg = requestOn(reloaded, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "after a reload: %s", env.safe(msg))
	require.Equal(t, tokens, env.fake.Stats().IAMTokenRequests, "no login anywhere")
	require.Zero(t, env.fake.Stats().IAMLoginFailures)

	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	for _, b := range []*backend{env.b, standby, reloaded} {
		b.invalidate(context.Background(), configStorageKey)
		_, status, msg = requestOn(b, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
		require.Equal(t, http.StatusOK, status, env.safe(msg))
	}
	require.EqualValues(t, 1, env.fake.Stats().IAMLoginFailures, "one refused login with the old password, in the settle")
}

// Defect 4: a key IAM creates after the create call's deadline is found by
// a rollback no sooner than walRollbackMinAge later, by its marker, and
// deleted; meanwhile rotate-root is refused rather than adding a third key.
func TestAccessKeyCreatedLateIsDeletedByALaterRollback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault smsfake.Fault
	}{
		{"created after the deadline", smsfake.Fault{Mode: smsfake.FaultApplyLate, Delay: smsfake.Duration(100 * time.Millisecond)}},
		{"504 at once, created later", smsfake.Fault{Mode: smsfake.FaultApplyLate, Status: 504, Delay: smsfake.Duration(100 * time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newRotationEnv(t, nil)
			env.configureAccessKey(map[string]any{"max_retries": 0, "request_timeout": 1})
			f := tc.fault
			f.Target, f.Call, f.Times = "iam", "create-key", 1
			require.NoError(t, env.fake.AddFault(f))
			_, status, msg := env.rotate()
			require.Equal(t, http.StatusBadGateway, status, msg)
			require.Contains(t, msg, "a key MAY have been created")
			require.Contains(t, msg, "looks again")
			require.Eventually(t, func() bool { return len(env.keys()) == 2 }, 5*time.Second, 5*time.Millisecond, "IAM creates it late")
			require.Equal(t, 1, walCount(t, env), "the log entry stays for the rollback")

			_, status, msg = env.rotate()
			require.Equal(t, http.StatusBadRequest, status, msg)
			require.Contains(t, msg, "not settled yet")
			settleRollback(t, env) // too early
			require.Len(t, env.keys(), 2)

			env.clock.Advance(walRollbackMinAge)
			settleRollback(t, env)
			require.Len(t, env.keys(), 1)
			require.Equal(t, testAccessKey, env.keys()[0].Access, "the configured key is kept")
			require.Zero(t, walCount(t, env))
			_, status, msg = env.rotate()
			require.Equal(t, http.StatusOK, status, msg)
		})
	}
}

// Create and delete, each applied behind a 5xx, after a reset of the answer,
// and late: the user ends with exactly the configured key.
func TestKeyCallsWithoutATrustworthyAnswerLeaveOneKey(t *testing.T) {
	faults := []struct {
		name  string
		fault smsfake.Fault
	}{
		{"applied behind a 504", smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Status: 504}},
		{"applied behind a 503", smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Status: 503}},
		{"applied, answer reset", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 201, Body: smsfake.BodyDrop}},
		{"reset before IAM sees it", smsfake.Fault{Mode: smsfake.FaultResetBeforeHeaders}},
		{"applied late", smsfake.Fault{Mode: smsfake.FaultApplyLate, Delay: smsfake.Duration(50 * time.Millisecond)}},
	}
	for _, call := range []string{"create-key", "delete-key"} {
		for _, tc := range faults {
			t.Run(call+"/"+tc.name, func(t *testing.T) {
				env, _ := newRotationEnv(t, nil)
				env.configureAccessKey(map[string]any{"max_retries": 0, "request_timeout": 1})
				f := tc.fault
				f.Target, f.Call, f.Times = "iam", call, 1
				if call == "delete-key" && f.Status == 201 {
					f.Status = 204
				}
				require.NoError(t, env.fake.AddFault(f))
				resp, status, msg := env.rotate()
				t.Logf("rotate: %d %s %v", status, msg, resp)
				if f.Mode == smsfake.FaultApplyLate {
					require.Eventually(t, func() bool { return env.fake.Stats().IAMAppliedLate == 1 }, 5*time.Second, 5*time.Millisecond)
				}
				env.clock.Advance(walRollbackMinAge)
				settleRollback(t, env)
				cfg, err := loadConfig(context.Background(), env.storage)
				require.NoError(t, err)
				var keys []string
				for _, k := range env.keys() {
					keys = append(keys, k.Access)
				}
				require.Equal(t, []string{cfg.AccessKey}, keys, "only the configured key is left")
				require.Zero(t, walCount(t, env))
				_, status, msg = env.readPassphrase(testTask)
				require.Equal(t, http.StatusOK, status, msg)
			})
		}
	}
}
