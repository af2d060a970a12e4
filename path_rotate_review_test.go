package sms

// Regression tests from the adversarial review of root-credential rotation:
// each failed before its fix, but for the probes, which checked a suspicion
// and found it unfounded, and keep it so.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// hookStorage runs hooks around writes.
type hookStorage struct {
	logical.Storage
	beforePut     func(ctx context.Context, e *logical.StorageEntry)
	afterPut      func(ctx context.Context, e *logical.StorageEntry)
	failWALDelete atomic.Bool
	afterDelete   func(key string)
}

func (s *hookStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.beforePut != nil {
		s.beforePut(ctx, e)
	}
	err := s.Storage.Put(ctx, e)
	if err == nil && s.afterPut != nil {
		s.afterPut(ctx, e)
	}
	return err
}

func (s *hookStorage) Delete(ctx context.Context, key string) error {
	if s.failWALDelete.Load() && strings.HasPrefix(key, "wal/") {
		return logical.ErrReadOnly
	}
	err := s.Storage.Delete(ctx, key)
	if err == nil && s.afterDelete != nil {
		s.afterDelete(key)
	}
	return err
}

// readOnlyStorage is what a performance standby sees.
type readOnlyStorage struct{ logical.Storage }

func (readOnlyStorage) Put(context.Context, *logical.StorageEntry) error { return logical.ErrReadOnly }
func (readOnlyStorage) Delete(context.Context, string) error             { return logical.ErrReadOnly }

// secondNode is another backend instance (another Vault node) over the same
// storage, with the given replication state.
func secondNode(t *testing.T, env *testEnv, state consts.ReplicationState) *backend {
	b2 := newBackend(hclog.NewNullLogger(), env.clock.Now)
	conf := logical.TestBackendConfig()
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour, ReplicationStateVal: state}
	require.NoError(t, b2.Setup(context.Background(), conf))
	b2.keyCheck = time.Second
	t.Cleanup(func() { b2.Clean(context.Background()) })
	return b2
}

func requestOn(b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, int, string) {
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: s, MountPoint: "sms/"}
	resp, err := b.HandleRequest(context.Background(), req)
	status, msg := vaultStatus(req, resp, err)
	return resp, status, msg
}

// A config deleted and written again must not share its generation with the
// one before (a counter restarted at 1 did): another node would keep the old
// config's cached answers under a new one.
func TestAConfigWrittenAfterADeleteFlushesOtherNodesCaches(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "5m"})
	node2 := secondNode(t, env, consts.ReplicationPerformanceStandby)

	_, status, msg := requestOn(node2, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusOK, status, msg)

	// The operator deletes the config and writes a new one: a different
	// account whose SMS holds no such task.
	other := smsfake.New(smsfake.Options{Tokens: []string{"other-token-0123456789"}, Tasks: map[string]string{}})
	srv2 := httptest.NewServer(other)
	t.Cleanup(srv2.Close)
	status, _ = env.del("config")
	require.Equal(t, http.StatusNoContent, status)
	node2.invalidate(context.Background(), "config")
	status, msg = env.write("config", map[string]any{"endpoint": srv2.URL, "token": "other-token-0123456789", "cache_ttl": "5m"})
	require.Equal(t, http.StatusNoContent, status, msg)
	node2.invalidate(context.Background(), "config")

	resp, status, _ := requestOn(node2, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	served := status == http.StatusOK && resp != nil && resp.Data["passphrase"] == testPassphrase
	require.False(t, served, "node 2 served the OLD config's cached passphrase under a new config (SMS of the new config was asked %d times)",
		other.Stats().Requests)
}

// A rollback on a performance standby (read-only storage, a view of the
// config that may lag) must not act upstream: it would delete the key the
// active node is about to store, and the active node the old one.
func TestRollbackOnAPerformanceStandbyDoesNothing(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	hs := &hookStorage{Storage: env.storage}
	env.storage = hs
	env.configureAccessKey(map[string]any{"max_retries": 0})
	standby := secondNode(t, env, consts.ReplicationPerformanceStandby)

	var once sync.Once
	hs.beforePut = func(ctx context.Context, e *logical.StorageEntry) {
		if e.Key != configStorageKey {
			return
		}
		once.Do(func() {
			// The standby's rollback tick, while the active node stores the
			// new key (the standby has not seen that write yet).
			req := &logical.Request{Operation: logical.RollbackOperation, Storage: readOnlyStorage{hs.Storage},
				Data: map[string]any{"immediate": true}}
			_, _ = standby.HandleRequest(context.WithoutCancel(ctx), req)
		})
	}
	_, status, msg := env.rotate()
	t.Logf("rotate-root: %d %s", status, msg)
	keys := env.keys()
	working := false
	for _, k := range keys {
		working = working || env.fake.KeyWorks(k.Access, k.Secret)
	}
	require.True(t, working, "no access key left for the IAM user (%d keys): the standby's rollback deleted the new key, the rotation the old", len(keys))
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the engine must keep a working credential: %s", msg)
}

// LIST roles/<role>/tasks in flight when the old key is deleted is retried
// with the new one.
func TestRoleTaskListInFlightSurvivesARotation(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) {
		o.TaskMeta = map[string]smsfake.TaskMeta{testTask: {Name: "web01", EnterpriseProjectID: "ep-a", State: "READY"}}
	})
	env.configureAccessKey(nil)
	status, msg := env.write("roles/team-a", map[string]any{"enterprise_project_ids": []any{"ep-a"}})
	require.Equal(t, http.StatusNoContent, status, msg)

	// The list's request reaches SMS's authentication after the rotation.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Call: "tasks",
		Delay: smsfake.Duration(3 * time.Second), Times: 1}))
	done := make(chan int, 1)
	var listMsg string
	go func() {
		_, st, m := env.request(logical.ListOperation, "roles/team-a/tasks", nil)
		listMsg = m
		done <- st
	}()
	waitUntil(t, func() bool { return env.fake.Stats().ListRequests == 1 })
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	select {
	case st := <-done:
		t.Fatalf("the list ended (%d) before the rotation did: the machine was too slow for this test", st)
	default:
	}
	st := <-done
	require.Equal(t, http.StatusOK, st, "a list in flight failed because of the rotation: %s", listMsg)
	require.EqualValues(t, 2, env.fake.Stats().ListRequests, "retried once, with the new key")
}

// A read on another node whose connection holds the old key, before its
// Invalidate arrives, is retried with the key in storage.
func TestAnotherNodeReadsWithTheStoredKeyBeforeItsInvalidate(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(nil)
	node2 := secondNode(t, env, consts.ReplicationPerformanceStandby)
	_, status, msg := requestOn(node2, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusOK, status, msg)

	_, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	// The config is already in (replicated) storage; Invalidate not yet run.
	_, status, msg = requestOn(node2, env.storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusOK, status, "read on node 2 failed because of the rotation: %s", msg)
}

// Password method: when storing the new password fails, IAM already has
// it and the old token is revoked; the engine keeps the old password in
// memory and every read fails until the WAL rollback (1 to 2 minutes).
func TestPasswordThatCannotBeStoredIsStillUsed(t *testing.T) {
	env, fs := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	fs.failPut.Store(true)
	_, status, msg = env.rotate()
	fs.failPut.Store(false) // storage is back at once
	require.Equal(t, http.StatusBadGateway, status, msg)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the engine has no working credential after a failed step: %s", env.safe(msg))
}

// The WAL entry is deleted before the old key is: if the request ends
// (Vault's request deadline while IAM is slow, the client leaving, a crash)
// between the two, the old, human-known key stays valid upstream and nothing
// ever retries its deletion.
func TestOldKeyIsDeletedWhenTheRequestEndsEarly(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	hs := &hookStorage{Storage: env.storage}
	env.storage = hs
	env.configureAccessKey(nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs.afterDelete = func(key string) {
		if strings.HasPrefix(key, "wal/") {
			cancel() // the deadline passes while the old key's DELETE is under way
		}
	}
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "config/rotate-root", Storage: hs, MountPoint: "sms/"}
	resp, err := env.b.HandleRequest(ctx, req)
	require.NoError(t, err)
	hs.afterDelete = nil
	t.Logf("warnings nobody reads: %v", resp.Warnings)

	// Vault's rollback, later.
	_, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: hs, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	require.False(t, env.fake.KeyWorks(testAccessKey, testSecretKey), "the old key still works and nothing will delete it")
}

// Same root cause without a crash: the old key's deletion fails, the
// rotation reports success with a warning, and the WAL rollback that exists to
// delete a replaced old key never runs because its entry is already gone.
func TestFailedOldKeyDeletionIsRetriedByTheRollback(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "delete-key", Status: 503, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	require.False(t, env.fake.KeyWorks(testAccessKey, testSecretKey), "the replaced key still works after the rollback")
}

// IAM answering 2xx to the delete without deleting: the engine reports a
// clean rotation while the old key still works.
func TestOldKeyDeletionIsConfirmed(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoCredentials, Target: "iam", Call: "delete-key", Status: 204, Times: 1}))
	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	require.True(t, env.fake.KeyWorks(testAccessKey, testSecretKey), "the fault answered 204 without deleting")
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "still lists it")
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	require.False(t, env.fake.KeyWorks(testAccessKey, testSecretKey), "the rollback deleted it")
	require.Len(t, env.keys(), 1)
}

// rotation_period is accepted for credentials that can never be rotated
// (a token, or an access key with a security_token); the schedule then fails
// forever, logging an error every backoff.
func TestRotationPeriodNeedsARotatableCredential(t *testing.T) {
	env := newTestEnv(t)
	status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "token": testToken, "rotation_period": "1h"})
	require.Equal(t, http.StatusBadRequest, status, "rotation_period with the token method must be refused at write: %s", msg)
	require.Contains(t, msg, "rotation_period needs a credential that can be rotated")
	status, msg = env.write("config", map[string]any{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey,
		"security_token": "temporary-security-token-0123", "rotation_period": "1h"})
	require.Equal(t, http.StatusBadRequest, status, msg)
	status, msg = env.write("config", map[string]any{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey,
		"rotation_period": "1h"})
	require.Equal(t, http.StatusNoContent, status, msg)
}

// A scheduled rotation that waited for the lock while another rotation ran
// finds the credential no longer due, and does nothing.
func TestScheduledRotationRechecksUnderTheLock(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"rotation_period": "1m", "max_retries": 0})
	env.clock.Advance(61 * time.Second)
	_, status, msg := env.rotate() // the manual rotation the schedule waited for
	require.Equal(t, http.StatusOK, status, msg)
	res, err := env.b.rotateRoot(context.Background(), env.storage, true)
	require.NoError(t, err)
	require.Nil(t, res)
	require.EqualValues(t, 1, env.fake.Stats().IAMKeyCalls["create-key"], "one rotation, not two")
}

// The generator does not meet every account password policy the
// reference names: 24 characters (minimum length may be set up to 32) and
// no guard on maximum_consecutive_identical_chars.
func TestGeneratedPasswordsFitStrictAccountPolicies(t *testing.T) {
	env := newTestEnv(t)
	pw, err := env.b.newPassword(context.Background(), &smsConfig{Username: testUser, Password: testPassword})
	require.NoError(t, err)
	require.Len(t, pw, 32, "an account's minimum length can be up to 32")
	adjacent := 0
	for i := 0; i < 1000; i++ {
		p := generatePassword(generatedPasswordLength)
		for j := 1; j < len(p); j++ {
			if p[j] == p[j-1] {
				adjacent++
				break
			}
		}
	}
	require.Zero(t, adjacent, "%d/1000 passwords have identical adjacent characters", adjacent)
}

// A rollback whose config was deleted cannot clean up (no credential to do
// it with): it names what may be left, for a person.
func TestRollbackAfterAConfigDeleteNamesWhatIsLeft(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "create-key", Status: 201, Body: smsfake.BodyDrop, Times: 1}))
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "delete-key", Status: 503, Times: 1}))
	_, status, _ := env.rotate()
	require.Equal(t, http.StatusBadGateway, status)
	require.Len(t, env.keys(), 2)
	status, _ = env.del("config")
	require.Equal(t, http.StatusNoContent, status)
	logsBefore := env.logs.String()
	env.clock.Advance(walRollbackMinAge) // the lost create is settled no sooner
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	keys := env.keys()
	require.Len(t, keys, 2, "stray key still upstream")
	logged := strings.TrimPrefix(env.logs.String(), logsBefore)
	require.Contains(t, logged, "cannot clean up")
	require.Contains(t, logged, keys[1].Description, "the marker in the stray key's description")
	require.Contains(t, logged, testAccessKey)
}

// Password rotation under concurrent reads: how many failed
// logins with the old password does it cause? IAM locks a user after a few.
func TestPasswordRotationMakesNoFailedLogins(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 5 })
	env.configurePassword(nil)
	require.Zero(t, rotateUnderReads(t, env, 3), "failed reads")
	require.Zero(t, env.fake.Stats().IAMLoginFailures, "rotation makes failed logins with the old password")
}

// Probe (passes): rotation_period bounds.
func TestRotationPeriodBounds(t *testing.T) {
	env := newTestEnv(t)
	for _, v := range []any{"59s", -60, "-1m", 1 << 40, "87601h", "1e3", 59.9} {
		status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey, "rotation_period": v})
		t.Logf("%v -> %d %s", v, status, msg)
		require.Equal(t, http.StatusBadRequest, status, "%v", v)
	}
	for _, v := range []any{"1m", 60, "87600h", 0} {
		status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey, "rotation_period": v})
		require.Equal(t, http.StatusNoContent, status, "%v %s", v, msg)
	}
}

// Probe (passes): IAM echoing the request's credentials in its errors, at every
// rotation step: nothing secret may reach the response or the log.
func TestIAMEchoingCredentialsAtEveryRotationStep(t *testing.T) {
	for _, method := range []string{"access_key", "password"} {
		for _, call := range []string{"show-key", "list-keys", "create-key", "delete-key", "change-password", "token"} {
			for _, prefix := range []int{0, 9, 12} {
				t.Run(method+"/"+call, func(t *testing.T) {
					env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.KeyActivationDelay = 0 })
					if method == "password" {
						env.configurePassword(map[string]any{"max_retries": 0})
					} else {
						env.configureAccessKey(map[string]any{"max_retries": 0})
					}
					before := env.fake.Password(testDomain, testUser)
					// a key created during the check of the new one is echoed too
					require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoCredentials, Target: "iam", Call: call, Status: 400, EchoPrefix: prefix}))
					resp, _, msg := env.rotate()
					text := msg + env.logs.String()
					if resp != nil {
						text += strings.Join(resp.Warnings, " ")
					}
					secrets := []string{testSecretKey, testPassword, before}
					if p := env.fake.Password(testDomain, testUser); p != "" {
						secrets = append(secrets, p)
					}
					for _, k := range env.keys() {
						secrets = append(secrets, k.Secret)
					}
					secrets = append(secrets, env.fake.IssuedTokens()...)
					for _, s := range secrets {
						for i := 0; i+8 <= len(s); i++ {
							if strings.Contains(text, s[i:i+8]) {
								t.Fatalf("a piece of a secret leaked (%s)", call)
							}
						}
					}
				})
			}
		}
	}
}

// Probe (passes): concurrent rotate-root calls are serialised; one key left.
func TestConcurrentRotationsSerialise(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configureAccessKey(nil)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, status, _ := env.rotate(); status != http.StatusOK {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, bad.Load())
	keys := env.keys()
	require.Len(t, keys, 1)
	cfg, _, _ := env.read("config")
	require.Equal(t, keys[0].Access, cfg.Data["access_key"])
}

// Probe (passes): a WAL entry left after the new key was stored (WAL delete
// failed / crash) never makes the rollback delete the live key.
func TestRollbackAfterStoreKeepsTheLiveKey(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	hs := &hookStorage{Storage: env.storage}
	env.storage = hs
	env.configureAccessKey(nil)
	hs.failWALDelete.Store(true)
	resp, status, msg := env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	hs.failWALDelete.Store(false)
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: hs, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	require.Len(t, env.keys(), 1)
	require.Equal(t, resp.Data["access_key"], env.keys()[0].Access)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
}

// waitUntil waits up to 10 s for cond.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Second review: RetireLogins that gives up (the rotation's context ends while a
// login is in flight) is never undone: the client stays retired, the token
// is never renewed, and once it expires every read fails until a config
// write or a restart.
func TestARotationThatGivesUpWaitingForALoginLeavesLoginsOn(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(nil)
	_, status, msg := env.readPassphrase(testTask) // a token held
	require.Equal(t, http.StatusOK, status, msg)

	// The renewal falls due and IAM is slow to answer it.
	env.clock.Advance(55 * time.Minute)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Target: "iam", Call: "token",
		Delay: smsfake.Duration(1500 * time.Millisecond), Times: 1}))
	_, status, msg = env.readPassphrase(testTask) // starts the background renewal
	require.Equal(t, http.StatusOK, status, msg)
	conn := env.b.conn.Load()
	waitUntil(t, conn.client.Renewing)

	// An operator's rotate-root whose request ends (client gone, or
	// rotationBound with a request_timeout above it) while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "config/rotate-root", Storage: env.storage, MountPoint: "sms/"}
	resp, err := env.b.HandleRequest(ctx, req)
	status, msg = vaultStatus(req, resp, err)
	t.Logf("rotate: %d %s", status, msg)
	require.Contains(t, msg, "wait for logins in flight")
	require.Equal(t, testPassword, env.fake.Password(testDomain, testUser), "nothing was changed")
	waitUntil(t, func() bool { return !conn.client.Renewing() })

	// Later, the token expires: the engine must log in again with the
	// password that IAM still has.
	env.clock.Advance(2 * time.Hour)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "reads after a rotation that changed nothing: %s", msg)
}

// Second review: after a password rotation whose store failed (the node keeps the
// new password in memory, as the README promises), any 401/403 from SMS makes
// rotatedConnection swap in the OLDER stored config: the node then logs in
// with the old password (failed IAM logins, lockout) and reads fail until the
// rollback.
func TestARefusedReadNeverMovesBackToAnOlderStoredPassword(t *testing.T) {
	env, fs := newRotationEnv(t, nil)
	env.configurePassword(nil)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	fs.failPut.Store(true)
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "store the new password")
	fs.failPut.Store(false) // storage is back; the rollback has not run yet

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the new password is in use: %s", msg)

	// One 403 from SMS (an IAM policy on an enterprise project, say).
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "sms", Call: "passphrase", Status: 403, Times: 1}))
	failuresBefore := env.fake.Stats().IAMLoginFailures
	_, status, msg = env.readPassphrase(testTask)
	t.Logf("refused read: %d %s", status, env.safe(msg))
	_, status, msg = env.readPassphrase(testTask)
	t.Logf("next read: %d %s", status, env.safe(msg))
	require.Equal(t, failuresBefore, env.fake.Stats().IAMLoginFailures, "logins with the old password")
	require.Equal(t, http.StatusOK, status, "reads keep the password IAM has: %s", env.safe(msg))
}

// Second review: a password change that IAM answers with a 5xx is probed with a
// login with the new password, which IAM refuses: one failed login per
// attempt. The schedule's backoff (1m, 2m, 4m, 8m) makes 5 of them in 15
// minutes, IAM's lockout, and the engine's own (right) password is then
// refused.
func TestPasswordChangeAnswered5xxIsNotProbed(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 5; o.TokenLifetime = 24 * time.Hour })
	env.configurePassword(map[string]any{"rotation_period": "1m", "max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password", Status: 503}))

	start := env.clock.Now()
	env.clock.Advance(61 * time.Second)
	for env.clock.Now().Sub(start) < 17*time.Minute {
		require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
		env.clock.Advance(time.Minute)
	}
	st := env.fake.Stats()
	t.Logf("change attempts %d, failed logins %d in 17 minutes", st.IAMKeyCalls["change-password"], st.IAMLoginFailures)
	env.fake.ClearFaults()
	// A 503 may come after IAM applied the change: the rollback settles it
	// (a login with the stored password, which works).
	env.clock.Advance(walRollbackMinAge)
	env.rollback()
	// The engine's token expires (or is revoked): it logs in with its own,
	// unchanged password.
	env.fake.RevokeTokens()
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the engine is locked out by its own probes: %s", env.safe(msg))
}

// Second review: a 403 from SMS for one task (not a credential problem) costs a
// storage read per read.
func TestRefusedReadsLookInStorageAtMostOnceASecond(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	cs := &countingStorage{Storage: env.storage}
	env.storage = cs
	env.configureAccessKey(nil)
	_, status, _ := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "sms", Call: "passphrase", Status: 403}))
	before := cs.gets.Load()
	for i := 0; i < 10; i++ {
		env.readPassphrase(testTask)
	}
	t.Logf("storage reads for 10 refused reads: %d", cs.gets.Load()-before)
	require.LessOrEqual(t, cs.gets.Load()-before, int64(3), "not one per refused read")
}

type countingStorage struct {
	logical.Storage
	gets atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.Storage.Get(ctx, key)
}

// Second review: a performance standby that reads between the password change
// and the store (replication lag) logs in with the old password.
func TestAStandbyReadingDuringAPasswordRotation(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	hs := &hookStorage{Storage: env.storage}
	env.storage = hs
	env.configurePassword(nil)
	node2 := secondNode(t, env, consts.ReplicationPerformanceStandby)
	_, status, msg := requestOn(node2, hs.Storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	require.Equal(t, http.StatusOK, status, msg)
	var once atomic.Bool
	hs.beforePut = func(_ context.Context, e *logical.StorageEntry) {
		if e.Key == configStorageKey && once.CompareAndSwap(false, true) {
			//nolint:contextcheck // another node's request, not part of the write being hooked
			_, status, msg := requestOn(node2, hs.Storage, logical.ReadOperation, "passphrase/"+testTask, nil)
			t.Logf("standby read in the window: %d %s", status, env.safe(msg))
		}
	}
	before := env.fake.Stats().IAMLoginFailures
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
	node2.invalidate(context.Background(), configStorageKey)
	_, status, msg = requestOn(node2, hs.Storage, logical.ReadOperation, "passphrase/"+testTask, nil)
	t.Logf("standby read after: %d %s; failed logins %d", status, env.safe(msg), env.fake.Stats().IAMLoginFailures-before)
	require.Equal(t, http.StatusOK, status, env.safe(msg))
	// Documented: a standby whose token IAM revoked before the new config
	// reached it makes one login with the old password.
	require.LessOrEqual(t, env.fake.Stats().IAMLoginFailures-before, int64(1))
}

// Second review: after "store the new password" failed, the README says rotating
// again is safe; it sends IAM the stored (old) password as original_password
// and fails until the rollback has run.
func TestRotatingAgainBeforeAPasswordIsSettledIsRefused(t *testing.T) {
	env, fs := newRotationEnv(t, nil)
	env.configurePassword(nil)
	fs.failPut.Store(true)
	_, _, msg := env.rotate()
	require.Contains(t, msg, "store the new password")
	fs.failPut.Store(false)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadRequest, status, env.safe(msg))
	require.Contains(t, msg, "not settled yet")
	require.Contains(t, msg, "nothing was changed")
	require.Zero(t, env.fake.Stats().IAMKeyCalls["change-password"]-1, "no second change sent")

	// The rollback settles it; then a rotation goes through.
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation,
		Storage: env.storage, Data: map[string]any{"immediate": true}})
	require.NoError(t, err)
	cfg, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, env.fake.Password(testDomain, testUser), string(cfg.Password), "the rollback stored the password IAM has")
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, env.safe(msg))
}

// Second review: the change's answer lost and the probe failing: logins resume
// with the old password although IAM may (here: does) have the new one.
func TestNoLoginWithTheOldPasswordWhileTheChangeIsUnknown(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password",
		Status: 204, Body: smsfake.BodyDrop, Times: 1}))
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "token", Status: 503, Times: 1}))
	_, _, msg = env.rotate()
	require.Contains(t, msg, "IAM may or may not have changed the password")
	before := env.fake.Stats().IAMLoginFailures
	for i := 0; i < 6; i++ { // reads over the two minutes before the rollback
		env.readPassphrase(testTask)
		env.clock.Advance(20 * time.Second)
	}
	t.Logf("failed logins before the rollback: %d", env.fake.Stats().IAMLoginFailures-before)
	require.Zero(t, env.fake.Stats().IAMLoginFailures-before, "logins with the old password after the change was sent")
}

// liarStorage stores the config, then reports a failure (a commit whose
// answer was lost: Raft leadership change, timeout).
type liarStorage struct {
	logical.Storage
	lie atomic.Bool
}

func (s *liarStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	err := s.Storage.Put(ctx, e)
	if err == nil && e.Key == configStorageKey && s.lie.Load() {
		return context.DeadlineExceeded
	}
	return err
}

// Second review: a config store that took effect but reported failure: what does
// the operator read, and what is left?
func TestAStoreThatReportsAFailureButTookEffect(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	ls := &liarStorage{Storage: env.storage}
	env.storage = ls
	env.configureAccessKey(nil)
	ls.lie.Store(true)
	_, status, msg := env.rotate()
	msg0 := msg
	ls.lie.Store(false)
	t.Logf("rotate: %d %s", status, msg)
	cfg, _ := loadConfig(context.Background(), ls)
	var ids []string
	for _, k := range env.keys() {
		ids = append(ids, k.Access)
	}
	t.Logf("stored key %s; IAM keys %v", cfg.AccessKey, ids)
	_, status, msg = env.readPassphrase(testTask)
	t.Logf("read: %d %s", status, msg)
	require.NotEqual(t, testAccessKey, cfg.AccessKey, "the store took effect")
	require.NotContains(t, msg0, "the configured key is unchanged", "the operator is told the opposite of what happened")
	require.Contains(t, msg0, "is stored and in use")
	require.Equal(t, []string{cfg.AccessKey}, ids, "the old key deleted, the stored one kept")
	require.Equal(t, http.StatusOK, status, msg)
}
