package sms

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// A settle writes what it learned (IAM refused the stored password) into a
// new log entry, and Vault deletes the entry it ran for only afterwards. A
// crash between the two leaves both: the next settle of the original entry
// must not log in with the refused password again (two failed logins in a
// row lock out a user whose lockout comes after two).
func TestSettleAfterACrashLeftTheOriginalEntryDoesNotRepeatARefusedLogin(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 2 })
	cutter := newIAMCutter(t, env)
	env.configurePassword(map[string]any{"iam_endpoint": cutter.srv.URL, "max_retries": 0, "request_timeout": 2})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "change-password", Status: 504, Times: 1}))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	newPw := env.fake.Password(testDomain, testUser)

	ctx := context.Background()
	ids, err := env.storage.List(ctx, "wal/")
	require.NoError(t, err)
	require.Len(t, ids, 1)
	original, err := env.storage.Get(ctx, "wal/"+ids[0])
	require.NoError(t, err)
	entry, err := framework.GetWAL(ctx, env.storage, ids[0])
	require.NoError(t, err)

	// The settle: the stored password is refused, the new one's login gets
	// no answer; a replacement entry records the refusal.
	cutter.cut.Store(newPw)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	require.EqualValues(t, 1, env.fake.Stats().IAMLoginFailures)

	// The crash: Vault never deleted the original entry.
	require.NoError(t, env.storage.Put(ctx, &logical.StorageEntry{Key: original.Key, Value: original.Value}))
	require.Equal(t, 2, walCount(t, env))

	// The rollback comes to the original entry first.
	cutter.cut.Store("")
	env.clock.Advance(walRollbackMinAge)
	_ = env.b.walRollback(ctx, &logical.Request{Storage: env.storage}, entry.Kind, entry.Data)
	settleRollback(t, env)

	require.Zero(t, env.fake.Stats().IAMLockouts, "the refused password was tried again: %d failed logins",
		env.fake.Stats().IAMLoginFailures)
	require.EqualValues(t, 1, env.fake.Stats().IAMLoginFailures)
	stored, err := loadConfig(ctx, env.storage)
	require.NoError(t, err)
	require.True(t, newPw == string(stored.Password), "settled: IAM's password is stored")
}

// Gap b: a key rotation whose rollback can never list the user's keys keeps
// rotate-root refused. The README's way out (delete the marked key in IAM,
// delete the config, wait for the rollback, write the config again) must
// work: without an access-key config the rollback drops the entry.
func TestAKeyRotationThatNeverSettlesCanBeGivenUpOn(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"max_retries": 0, "request_timeout": 2})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "create-key", Status: 504, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	// From now on the user's keys cannot be listed (a permission removed).
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "list-keys", Status: 403}))
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	require.Equal(t, 1, walCount(t, env), "the list keeps failing: unsettled")
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "not settled yet")

	status, msg = env.del("config")
	require.Equal(t, http.StatusNoContent, status, msg)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	require.Zero(t, walCount(t, env), "without an access-key config the rollback drops the entry")

	env.fake.ClearFaults()
	env.configureAccessKey(map[string]any{"max_retries": 0, "request_timeout": 2})
	_, _, msg = env.rotate()
	require.NotContains(t, msg, "not settled yet")
}
