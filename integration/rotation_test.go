//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	rotUser   = "rotation-user"
	rotDomain = "rotation-domain"
	rotPW     = "Rot-pw-5c1e9a7b3d"
	rotAK     = "AKROTATION00000000001"
	rotSK     = "rot-sk-7d5b3a1c9e7f5d3b"
)

func init() { neverLog(rotPW, rotSK) }

func rotationFake(t *testing.T) *fakeSMS {
	return startFake(t, smsfake.Options{
		AccessKeys: map[string]string{rotAK: rotSK},
		Users:      []smsfake.User{{Domain: rotDomain, Name: rotUser, Password: rotPW}},
		Tasks:      map[string]string{"demo-task-0001": passphrase},
	})
}

// readsDuring keeps one reader going on each path until stop, and returns
// how many reads failed.
func readsDuring(t *testing.T, v *vaultServer, paths []string, stop <-chan struct{}) *atomic.Int64 {
	var failed atomic.Int64
	c := v.api(v.rootToken)
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := c.Logical().Read(p)
				if err != nil || s == nil || s.Data["passphrase"] != passphrase {
					failed.Add(1)
				}
			}
		}()
	}
	t.Cleanup(wg.Wait)
	return &failed
}

func TestRotateRootThroughTheCLI(t *testing.T) {
	v := newVault(t, "rotate")
	fake := rotationFake(t)
	v.root("secrets", "enable", "-path=sms-aksk", pluginName)
	v.root("write", "sms-aksk/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL, "cache_ttl=0",
		"access_key="+rotAK, "secret_key="+rotSK)
	v.root("secrets", "enable", "-path=sms-iam", pluginName)
	v.root("write", "sms-iam/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL, "cache_ttl=0",
		"username="+rotUser, "password="+rotPW, "domain_name="+rotDomain)

	stop := make(chan struct{})
	failed := readsDuring(t, v, []string{"sms-aksk/passphrase/demo-task-0001", "sms-iam/passphrase/demo-task-0001"}, stop)

	for i := 0; i < 2; i++ {
		out := v.root("write", "-f", "-format=json", "sms-aksk/config/rotate-root")
		var res struct{ Data map[string]any }
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		newAK := res.Data["access_key"].(string)
		keys := fake.Keys(rotDomain, rotUser)
		require.Len(t, keys, 1)
		require.Equal(t, newAK, keys[0].Access)
		neverLog(keys[0].Secret)
		require.NotContains(t, out, keys[0].Secret, "never the secret key")

		out = v.root("write", "-f", "-format=json", "sms-iam/config/rotate-root")
		newPW := fake.Password(rotDomain, rotUser)
		neverLog(newPW)
		require.NotEqual(t, rotPW, newPW)
		require.NotContains(t, out, newPW)
	}
	close(stop)
	require.Zero(t, failed.Load(), "no read failed during the rotations")

	require.False(t, fake.KeyWorks(rotAK, rotSK), "the old key no longer works")
	code, body := v.call(v.rootToken, "GET", "sms-aksk/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)
	// The old password no longer works: a config given it cannot read.
	v.root("write", "sms-iam/config", "password="+rotPW)
	code, body = v.call(v.rootToken, "GET", "sms-iam/passphrase/demo-task-0001")
	require.Equal(t, http.StatusBadGateway, code, body)
	require.Contains(t, body, "IAM refused")

	data, err := v.readJSON(v.rootToken, "sms-aksk/config")
	require.NoError(t, err)
	require.NotEmpty(t, data["last_rotated"])
	require.Equal(t, fake.Keys(rotDomain, rotUser)[0].Access, data["access_key"])
}

// A crash between creating a key and storing it leaves no orphan key: the
// write-ahead log is rolled back after the plugin restarts. And, meanwhile,
// a mount with a one-minute rotation_period rotates on its own.
func TestRotationCrashIsRolledBackAndTheScheduleRotates(t *testing.T) {
	v := newVault(t, "rotate-crash")
	fake := rotationFake(t)
	scheduled := startFake(t, smsfake.Options{
		AccessKeys: map[string]string{"AKSCHEDULED000000001": "sched-sk-0a1b2c3d4e5f6a7b"},
		Users:      []smsfake.User{{Domain: "sched-domain", Name: "sched-user", Password: "Sched-pw-0a1b2c"}},
		Tasks:      map[string]string{"demo-task-0001": passphrase},
	})
	neverLog("sched-sk-0a1b2c3d4e5f6a7b")
	v.root("secrets", "enable", "-path=sms-aksk", pluginName)
	v.root("write", "sms-aksk/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"access_key="+rotAK, "secret_key="+rotSK)
	v.root("secrets", "enable", "-path=sms-sched", pluginName)
	v.root("write", "sms-sched/config", "endpoint="+scheduled.URL, "iam_endpoint="+scheduled.URL, "rotation_period=1m",
		"access_key=AKSCHEDULED000000001", "secret_key=sched-sk-0a1b2c3d4e5f6a7b")
	data, err := v.readJSON(v.rootToken, "sms-sched/config")
	require.NoError(t, err)
	require.NotEmpty(t, data["next_rotation"])

	// IAM creates the key and holds its answer; the plugin dies meanwhile.
	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "create-key",
		Status: 201, Body: smsfake.BodyHold, Times: 1}))
	go func() { _, _, _ = v.cli(v.rootToken, "write", "-f", "sms-aksk/config/rotate-root") }()
	waitFor(t, 30*time.Second, "IAM to create the new key", func() bool { return len(fake.Keys(rotDomain, rotUser)) == 2 })
	for _, k := range fake.Keys(rotDomain, rotUser) {
		neverLog(k.Secret)
	}
	pids := pluginPIDs(t, v)
	require.NotEmpty(t, pids)
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	fake.Release()

	// Vault restarts the plugin on the next request; its rollback (about
	// once a minute, for entries older than a minute) deletes the orphan.
	waitFor(t, 30*time.Second, "the plugin to serve again", func() bool {
		code, _ := v.call(v.rootToken, "GET", "sms-aksk/config")
		return code == http.StatusOK
	})
	waitFor(t, 4*time.Minute, "the rollback to delete the orphan key", func() bool {
		keys := fake.Keys(rotDomain, rotUser)
		return len(keys) == 1 && keys[0].Access == rotAK
	})
	require.True(t, fake.KeyWorks(rotAK, rotSK), "the configured key is kept")
	code, body := v.call(v.rootToken, "GET", "sms-aksk/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)

	// The scheduled rotation has happened by now (due after a minute,
	// checked about once a minute), or happens shortly.
	waitFor(t, 3*time.Minute, "the scheduled rotation", func() bool {
		keys := scheduled.Keys("sched-domain", "sched-user")
		return len(keys) == 1 && keys[0].Access != "AKSCHEDULED000000001"
	})
	for _, k := range scheduled.Keys("sched-domain", "sched-user") {
		neverLog(k.Secret)
	}
	data, err = v.readJSON(v.rootToken, "sms-sched/config")
	require.NoError(t, err)
	require.NotEmpty(t, data["last_rotated"])
	require.Equal(t, scheduled.Keys("sched-domain", "sched-user")[0].Access, data["access_key"])
	code, body = v.call(v.rootToken, "GET", "sms-sched/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)
	require.False(t, strings.Contains(body, "sched-sk-"), "no secret in a read")
}
