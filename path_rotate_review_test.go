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
					t.Logf("read failed: %d %s", status, env.safe(msg))
					failures.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		_, status, msg := env.rotate()
		require.Equal(t, http.StatusOK, status, env.safe(msg))
	}
	close(stop)
	wg.Wait()
	t.Logf("failed logins: %d, failed reads: %d", env.fake.Stats().IAMLoginFailures, failures.Load())
	require.Zero(t, failures.Load())
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
