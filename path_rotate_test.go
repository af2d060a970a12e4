package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// flakyStorage fails writes to the config while failPut is set.
type flakyStorage struct {
	logical.Storage
	failPut atomic.Bool
}

func (s *flakyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.failPut.Load() && e.Key == configStorageKey {
		return errors.New("storage unavailable")
	}
	return s.Storage.Put(ctx, e)
}

func (e *testEnv) configureAccessKey(extra map[string]any) {
	e.t.Helper()
	data := map[string]any{"endpoint": e.srv.URL, "iam_endpoint": e.srv.URL,
		"access_key": testAccessKey, "secret_key": testSecretKey, "cache_ttl": 0}
	for k, v := range extra {
		data[k] = v
	}
	status, msg := e.write("config", data)
	require.Equal(e.t, http.StatusNoContent, status, msg)
}

func (e *testEnv) rotate() (*logical.Response, int, string) {
	return e.request(logical.UpdateOperation, "config/rotate-root", nil)
}

func (e *testEnv) keys() []smsfake.KeyInfo { return e.fake.Keys(testDomain, testUser) }

// newRotationEnv is a test env whose storage can fail config writes and
// whose key check gives up quickly.
func newRotationEnv(t *testing.T, tune func(*smsfake.Options)) (*testEnv, *flakyStorage) {
	env := newTestEnvWith(t, tune)
	fs := &flakyStorage{Storage: env.storage}
	env.storage = fs
	env.b.keyCheck = 3 * time.Second
	return env, fs
}

func TestRotateAccessKey(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(nil)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	newAK := resp.Data["access_key"].(string)
	require.NotEqual(t, testAccessKey, newAK)
	require.Equal(t, "access_key", resp.Data["auth_method"])
	require.NotEmpty(t, resp.Data["rotated_at"])
	require.Empty(t, resp.Warnings)
	keys := env.keys()
	require.Len(t, keys, 1, "the old key is deleted")
	require.Equal(t, newAK, keys[0].Access)
	assertNoSecrets(t, fmt.Sprint(resp.Data), keys[0].Secret, testSecretKey)
	assertNoSecrets(t, env.logs.String(), keys[0].Secret)

	require.False(t, env.fake.KeyWorks(testAccessKey, testSecretKey), "the old key no longer works")
	cfg, _, _ := env.read("config")
	require.Equal(t, newAK, cfg.Data["access_key"])
	require.NotEmpty(t, cfg.Data["last_rotated"])
	assertNoSecrets(t, fmt.Sprint(cfg.Data), keys[0].Secret)

	before := env.fake.Stats().ByAuth["aksk"]
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "reads work with the new key: %s", msg)
	require.Equal(t, before+1, env.fake.Stats().ByAuth["aksk"])

	// Again: the new key is rotated away in turn.
	resp, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.NotEqual(t, newAK, resp.Data["access_key"])
	require.Len(t, env.keys(), 1)
}

func TestRotationKeepsTheCache(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"cache_ttl": "5m"})
	env.readPassphrase(testTask)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	env.readPassphrase(testTask)
	require.EqualValues(t, 1, env.fake.Stats().Requests, "cached passphrases stay valid across a rotation")
}

func TestRotationRefusesWhatCannotBeRotated(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.SecurityTokens = map[string]string{testAccessKey: testSecurityTok} })
	env.configure(nil)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, msg, "static token cannot be rotated")

	env.configureAccessKey(map[string]any{"token": "", "security_token": testSecurityTok})
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, msg, "temporary credentials")
	assertNoSecrets(t, msg)

	status, _ = env.del("config")
	require.Equal(t, http.StatusNoContent, status)
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status, msg)
}

func TestRotationStopsAtTwoKeysBeforeChangingAnything(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) {
		o.AccessKeys = map[string]string{testAccessKey: testSecretKey, "AKOTHER0000000000001": "sk-other-000000000000000000"}
	})
	env.configureAccessKey(nil)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "already has 2 access keys")
	require.Contains(t, msg, "AKOTHER0000000000001")
	require.Contains(t, msg, "nothing was changed")
	require.Len(t, env.keys(), 2)
	require.Zero(t, env.fake.Stats().IAMKeyCalls["create-key"])
}

func TestRotationStepFailuresSayWhatFailedAndWhatWasLeft(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    smsfake.Fault
		storeErr bool
		status   int
		step     string
		left     string
		keys     int // keys the user holds afterwards
		rotated  bool
	}{
		{name: "show key", fault: smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "show-key", Status: 503},
			status: 502, step: "find the IAM user", left: "nothing was changed", keys: 1},
		{name: "list keys", fault: smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "list-keys", Status: 500},
			status: 502, step: "list the IAM user's access keys", left: "nothing was changed", keys: 1},
		{name: "create refused", fault: smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "create-key", Status: 403},
			status: 502, step: "create a new access key", left: "no key was created", keys: 1},
		{name: "create answer lost", fault: smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "create-key", Status: 201, Body: smsfake.BodyDrop},
			status: 502, step: "create a new access key", left: "a key MAY have been created (now or later): deleted so far: ", keys: 1},
		{name: "store fails", storeErr: true,
			status: 502, step: "store the new access key", left: "was deleted; the configured key is unchanged", keys: 1},
		{name: "old key not deleted", fault: smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "delete-key", Status: 503},
			status: 200, left: "deleting the old key", keys: 2, rotated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, fs := newRotationEnv(t, nil)
			env.configureAccessKey(map[string]any{"max_retries": 0})
			if tc.fault.Mode != "" {
				require.NoError(t, env.fake.AddFault(tc.fault))
			}
			fs.failPut.Store(tc.storeErr)
			resp, status, msg := env.rotate()
			fs.failPut.Store(false)
			env.fake.ClearFaults()
			require.Equal(t, tc.status, status, msg)
			var warnings string
			if tc.status == http.StatusOK {
				warnings = strings.Join(resp.Warnings, " ")
				require.Contains(t, warnings, tc.left)
			} else {
				require.Contains(t, msg, tc.step)
				require.Contains(t, msg, tc.left)
			}
			require.Len(t, env.keys(), tc.keys)
			cfg, _, _ := env.read("config")
			require.Equal(t, !tc.rotated, cfg.Data["access_key"] == testAccessKey)
			for _, k := range env.keys() {
				assertNoSecrets(t, msg+warnings+env.logs.String(), k.Secret)
			}
			// Whatever happened, the engine still has a working credential.
			_, status, msg = env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
		})
	}
}

func TestNewKeyIsCheckedUntilIAMAcceptsIt(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.KeyActivationDelay = 5 * time.Second })
	env.configureAccessKey(nil)
	// IAM accepts the new key once five seconds have passed on its clock;
	// advance it after the engine has tried the key once.
	go func() {
		for env.fake.Stats().IAMKeyCalls["show-key"] < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		env.clock.Advance(6 * time.Second)
	}()
	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.Len(t, env.keys(), 1)
	require.Equal(t, resp.Data["access_key"], env.keys()[0].Access)
}

func TestNewKeyThatNeverWorksIsDeleted(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.KeyActivationDelay = time.Hour })
	env.b.keyCheck = 2 * time.Second
	env.configureAccessKey(nil)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "check that the new access key works")
	require.Contains(t, msg, "was deleted; the configured key is unchanged")
	require.Len(t, env.keys(), 1)
	require.True(t, env.fake.KeyWorks(testAccessKey, testSecretKey))
}

// A crash (or an undo that fails) between creating a key and storing it is
// rolled back from the write-ahead log: the stray key is deleted, never the
// one the config holds.
func TestWALRollbackDeletesAStrayKey(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"max_retries": 0})
	// The key is created, its answer lost, and the undo's deletion fails too.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "create-key", Status: 201, Body: smsfake.BodyDrop, Times: 1}))
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "delete-key", Status: 503, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "write-ahead log rollback")
	require.Len(t, env.keys(), 2, "a stray key is left for now")

	wals, err := env.storage.List(context.Background(), "wal/")
	require.NoError(t, err)
	require.Len(t, wals, 1)
	// Vault's rollback, as it would run it after walRollbackMinAge.
	env.clock.Advance(walRollbackMinAge)
	resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err, "%v", resp)
	require.Len(t, env.keys(), 1)
	require.Equal(t, testAccessKey, env.keys()[0].Access, "the configured key is kept")
	wals, _ = env.storage.List(context.Background(), "wal/")
	require.Empty(t, wals)
}

func TestRotatePassword(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(nil)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	tokensBefore := env.fake.Stats().IAMTokensIssued
	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "password", resp.Data["auth_method"])
	newPW := env.fake.Password(testDomain, testUser)
	require.NotEqual(t, testPassword, newPW)
	require.Empty(t, checkHuaweiPassword(newPW, testUser, testPassword))
	assertNoSecrets(t, fmt.Sprint(resp.Data)+env.logs.String(), newPW)

	// Reads go on with a token of the new password, which the rotation
	// took at its end; the old one is refused.
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, tokensBefore+1, env.fake.Stats().IAMTokensIssued)
	status, _ = env.write("config", map[string]any{"password": testPassword})
	require.Equal(t, http.StatusNoContent, status)
	_, status, _ = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, "the old password no longer logs in")
}

func TestRotatePasswordFromAVaultPasswordPolicy(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.b.System().(*logical.StaticSystemView).PasswordPolicies = map[string]logical.PasswordGenerator{
		"sms":  func() (string, error) { return "Policy-Made-Pass-4711", nil },
		"weak": func() (string, error) { return "allsmallletters", nil },
	}
	env.configurePassword(map[string]any{"password_policy": "sms"})
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "Policy-Made-Pass-4711", env.fake.Password(testDomain, testUser))

	env.configurePassword(map[string]any{"password_policy": "weak", "password": "Policy-Made-Pass-4711"})
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "IAM would refuse")
	env.configurePassword(map[string]any{"password_policy": "missing", "password": "Policy-Made-Pass-4711"})
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, `password_policy "missing"`)
	require.Equal(t, "Policy-Made-Pass-4711", env.fake.Password(testDomain, testUser), "nothing was changed")
}

// IAM changed the password and its answer was lost: the rotation is
// unsettled, no login is made until the rollback settles it, and the rollback
// (no sooner than walRollbackMinAge) finds the new password and stores it.
func TestPasswordChangeWhoseAnswerIsLostIsSettledByTheRollback(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password",
		Status: 204, Body: smsfake.BodyDrop, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	require.Contains(t, msg, "the rotation is unsettled")
	require.NotEqual(t, testPassword, env.fake.Password(testDomain, testUser), "IAM did change it")
	require.Zero(t, env.fake.Stats().IAMLoginFailures, "no probe")

	// Too early: the rollback leaves it.
	env.rollback()
	wals, _ := env.storage.List(context.Background(), "wal/")
	require.Len(t, wals, 1)

	env.clock.Advance(walRollbackMinAge)
	env.rollback()
	cfg, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, env.fake.Password(testDomain, testUser), string(cfg.Password), "the password IAM has is stored")
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, env.safe(msg))
	wals, _ = env.storage.List(context.Background(), "wal/")
	require.Empty(t, wals)
	require.EqualValues(t, 1, env.fake.Stats().IAMLoginFailures, "one refused login with the old password, then a success")
}

// The same when IAM cannot say at first either (its login fails with a 503):
// the entry stays, and a later rollback stores the password IAM has.
func TestPasswordChangeWhoseAnswerIsLostIsRolledForward(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask) // a token held: the change needs one
	require.Equal(t, http.StatusOK, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password",
		Status: 204, Body: smsfake.BodyDrop, Times: 1}))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "IAM may or may not have changed the password")
	require.NotEqual(t, testPassword, env.fake.Password(testDomain, testUser), "IAM did change it")

	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "token",
		Status: 503, Times: 1}))
	env.clock.Advance(walRollbackMinAge)
	env.rollback()
	wals, _ := env.storage.List(context.Background(), "wal/")
	require.Len(t, wals, 1, "IAM could not say: the entry stays")
	env.rollback()
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the rollback stored the password IAM has: %s", msg)
}

// rollback runs Vault's rollback over every write-ahead log entry.
func (e *testEnv) rollback() {
	e.t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: e.storage, Data: map[string]any{"immediate": true}})
	require.NoError(e.t, err, "%v", resp)
}

func TestPasswordChangeRefusedChangesNothing(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(nil)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password", Status: 400, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "the configured password is unchanged")
	require.Equal(t, testPassword, env.fake.Password(testDomain, testUser))
	wals, _ := env.storage.List(context.Background(), "wal/")
	require.Empty(t, wals)
}

func TestScheduledRotation(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"rotation_period": "1m", "max_retries": 0})
	periodic := func() {
		require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	}
	cfg, _, _ := env.read("config")
	due, err := time.Parse(time.RFC3339, cfg.Data["next_rotation"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, env.clock.Now().Add(time.Minute), due, time.Second)

	env.clock.Advance(59 * time.Second)
	periodic()
	require.Zero(t, env.fake.Stats().IAMKeyCalls["create-key"], "not due yet")
	env.clock.Advance(2 * time.Second)
	periodic()
	require.EqualValues(t, 1, env.fake.Stats().IAMKeyCalls["create-key"])
	cfg, _, _ = env.read("config")
	require.NotEqual(t, testAccessKey, cfg.Data["access_key"])
	require.NotEmpty(t, cfg.Data["last_rotated"])

	// A failing rotation is logged and tried again after a backoff, never
	// on every tick.
	env.clock.Advance(61 * time.Second)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "show-key", Status: 503}))
	showBefore := env.fake.Stats().IAMKeyCalls["show-key"]
	periodic()
	periodic()
	periodic()
	require.EqualValues(t, 1, env.fake.Stats().IAMKeyCalls["show-key"]-showBefore, "one attempt, then the backoff")
	cfg, _, _ = env.read("config")
	require.Contains(t, cfg.Data["last_rotation_error"], "find the IAM user")
	require.Equal(t, 1, strings.Count(env.logs.String(), "scheduled root-credential rotation failed"))
	env.fake.ClearFaults()
	env.clock.Advance(61 * time.Second)
	periodic()
	require.EqualValues(t, 2, env.fake.Stats().IAMKeyCalls["create-key"], "tried again after the backoff")
	cfg, _, _ = env.read("config")
	require.Empty(t, cfg.Data["last_rotation_error"])
}

// A rotation under concurrent reads: no read fails because of it.
func TestNoReadFailsBecauseOfARotation(t *testing.T) {
	for _, method := range []string{"access_key", "password"} {
		t.Run(method, func(t *testing.T) {
			env, _ := newRotationEnv(t, nil)
			if method == "password" {
				env.configurePassword(nil)
			} else {
				env.configureAccessKey(nil)
			}
			require.Zero(t, rotateUnderReads(t, env, 3))
		})
	}
}

// rotateUnderReads rotates n times while four readers read testTask, and
// returns how many reads failed.
func rotateUnderReads(t *testing.T, env *testEnv, n int) int64 {
	t.Helper()
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, status, msg := env.readPassphrase(testTask); status != http.StatusOK {
					failures.Add(1)
					t.Logf("a read failed: %d %s", status, env.safe(msg))
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		_, status, msg := env.rotate()
		require.Equal(t, http.StatusOK, status, env.safe(msg))
	}
	close(stop)
	wg.Wait()
	return failures.Load()
}
