//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	smsToken   = "itest-token-8b7a6c5d4e3f2a1b0c9d"
	passphrase = "itest-passphrase-1f2e3d4c5b6a"
	taskA      = "team-a-0001"
	taskB      = "team-b-0001"
)

func init() { neverLog(smsToken, passphrase, "team-a-passphrase-77", "team-b-passphrase-88") }

func standardFake(t *testing.T) *fakeSMS {
	return startFake(t, smsfake.Options{
		Tokens: []string{smsToken},
		Tasks:  map[string]string{"demo-task-0001": passphrase, taskA: "team-a-passphrase-77", taskB: "team-b-passphrase-88"},
	})
}

// 1. config write, read (no token in it), update of one field, delete.
func TestConfigLifecycleThroughTheCLI(t *testing.T) {
	v := newVault(t, "config")
	fake := standardFake(t)
	v.root("secrets", "enable", "-path=sms", pluginName)

	v.root("write", "sms/config", "endpoint="+fake.URL, "token="+smsToken, "cache_ttl=2m")
	out := v.root("read", "-format=json", "sms/config")
	require.NotContains(t, out, smsToken, "a config read must never return the token")
	var cfg struct{ Data map[string]any }
	require.NoError(t, json.Unmarshal([]byte(out), &cfg))
	require.Equal(t, fake.URL, cfg.Data["endpoint"])
	require.Equal(t, true, cfg.Data["token_set"])
	require.EqualValues(t, 120, cfg.Data["cache_ttl"])

	// Update one field: everything else stays.
	v.root("write", "sms/config", "cache_max_entries=7")
	data, err := v.readJSON(v.rootToken, "sms/config")
	require.NoError(t, err)
	require.EqualValues(t, 7, data["cache_max_entries"])
	require.EqualValues(t, 120, data["cache_ttl"])
	require.Equal(t, fake.URL, data["endpoint"])

	// A bad value is a 400 naming the field; nothing changes.
	_, errOut, err := v.cli(v.rootToken, "write", "sms/config", "endpoint=http://sms.example.com")
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "endpoint")
	data, _ = v.readJSON(v.rootToken, "sms/config")
	require.Equal(t, fake.URL, data["endpoint"])

	v.root("delete", "sms/config")
	_, errOut, err = v.cli(v.rootToken, "read", "sms/passphrase/demo-task-0001")
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "write sms/config")
	require.Zero(t, fake.Stats().Requests)
}

// 2. passphrase read, and the cache contract.
func TestPassphraseReadAndCacheContract(t *testing.T) {
	v := newVault(t, "cache")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken)

	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	out := v.root("read", "-format=json", "sms/passphrase/demo-task-0001")
	var secret struct {
		LeaseID       string         `json:"lease_id"`
		LeaseDuration int            `json:"lease_duration"`
		Data          map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &secret))
	require.Empty(t, secret.LeaseID, "no lease")
	require.Equal(t, "demo-task-0001", secret.Data["task_id"])
	require.EqualValues(t, 1, fake.Stats().Requests, "the second read is served from the cache")

	// Through the Go API too, and concurrently: still no upstream call.
	c := v.api(v.rootToken)
	for i := 0; i < 20; i++ {
		s, err := c.Logical().Read("sms/passphrase/demo-task-0001")
		require.NoError(t, err)
		require.Equal(t, passphrase, s.Data["passphrase"])
	}
	require.EqualValues(t, 1, fake.Stats().Requests)

	// Evict one task: the next read goes upstream again.
	v.root("delete", "sms/passphrase/demo-task-0001")
	v.root("read", "sms/passphrase/demo-task-0001")
	require.EqualValues(t, 2, fake.Stats().Requests)

	stats, err := v.readJSON(v.rootToken, "sms/cache")
	require.NoError(t, err)
	require.EqualValues(t, 1, stats["entries"])
	require.EqualValues(t, 2, stats["upstream_requests"])
	require.EqualValues(t, 21, stats["hits"])

	v.root("delete", "sms/cache")
	stats, _ = v.readJSON(v.rootToken, "sms/cache")
	require.EqualValues(t, 0, stats["entries"])

	// Statuses as a Vault client sees them.
	status, body := v.call(v.rootToken, "GET", "sms/passphrase/no-such-task")
	require.Equal(t, http.StatusNotFound, status, body)
	require.Contains(t, body, "SMS has no task")
	status, body = v.call(v.rootToken, "GET", "sms/passphrase/bad..id!")
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, "task_id")
	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 403, Times: 1}))
	_, err = c.Logical().Read("sms/passphrase/" + taskA)
	require.Equal(t, http.StatusBadGateway, statusOf(err), "an SMS refusal is 502, not Vault's 403: %v", err)
	require.Contains(t, err.Error(), "SMS.9004")
	require.NotContains(t, err.Error(), "ENCODED-AUTHZ")
	s, err := c.Logical().Read("sms/passphrase/" + taskA)
	require.NoError(t, err, "a failing upstream never breaks the mount")
	require.Equal(t, "team-a-passphrase-77", s.Data["passphrase"])
}

// 3. ACL: a policy on sms/passphrase/team-a-* grants exactly that.
func TestACLPolicyLimitsReadsToMatchingTasks(t *testing.T) {
	v := newVault(t, "acl")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken)

	policy := filepath.Join(t.TempDir(), "team-a.hcl")
	require.NoError(t, os.WriteFile(policy, []byte(`
path "sms/passphrase/team-a-*" {
  capabilities = ["read"]
}
`), 0o600))
	v.root("policy", "write", "team-a", policy)
	token := strings.TrimSpace(v.root("token", "create", "-policy=team-a", "-field=token"))
	neverLog(token)

	require.Equal(t, "team-a-passphrase-77", strings.TrimSpace(v.cliOK(token, "read", "-field=passphrase", "sms/passphrase/"+taskA)))
	before := fake.Stats().Requests

	for _, path := range []string{"sms/passphrase/" + taskB, "sms/config", "sms/cache"} {
		_, errOut, err := v.cli(token, "read", path)
		require.Error(t, err, path)
		require.Contains(t, errOut, "Code: 403", path)
	}
	for _, args := range [][]string{{"delete", "sms/passphrase/" + taskA}, {"write", "sms/config", "token=x"}, {"delete", "sms/cache"}} {
		_, errOut, err := v.cli(token, args...)
		require.Error(t, err, "%v", args)
		require.Contains(t, errOut, "Code: 403", "%v", args)
	}
	require.Equal(t, before, fake.Stats().Requests, "denied reads must never reach SMS")
	require.Zero(t, fake.Stats().ByTask[taskB])
}

// 4. audit: the request is recorded; neither passphrase nor tokens in clear.
func TestAuditLogRecordsReadsWithoutSecrets(t *testing.T) {
	v := newVault(t, "audit")
	fake := standardFake(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)

	// The config write (with the SMS token) and the read happen under audit.
	v.mount("sms", fake, smsToken)
	v.root("read", "sms/passphrase/demo-task-0001")
	_, _, err := v.cli(v.rootToken, "read", "sms/passphrase/no-such-task")
	require.Error(t, err)

	raw, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	log := string(raw)
	require.Contains(t, log, `"path":"sms/passphrase/demo-task-0001"`)
	require.Contains(t, log, `"path":"sms/config"`)
	require.Contains(t, log, `"passphrase":"hmac-sha256:`, "the passphrase is recorded as an HMAC")
	require.Contains(t, log, `"token":"hmac-sha256:`, "the SMS token in the config write is recorded as an HMAC")
	require.Contains(t, log, "SMS has no task", "errors are recorded")
	require.NotContains(t, log, passphrase)
	require.NotContains(t, log, smsToken)
	require.NotContains(t, log, v.rootToken)

	// The HMAC lets an operator check which value was served.
	hashed := strings.TrimSpace(v.root("write", "-field=hash", "sys/audit-hash/file", "input="+passphrase))
	require.Contains(t, log, `"passphrase":"`+hashed+`"`)
}

// 5. Vault Agent renders the passphrase and re-renders after a change.
func TestVaultAgentRendersAndReRenders(t *testing.T) {
	v := newVault(t, "agent")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken, "cache_ttl=1s")

	policy := filepath.Join(t.TempDir(), "agent.hcl")
	require.NoError(t, os.WriteFile(policy, []byte(`path "sms/passphrase/*" { capabilities = ["read"] }`), 0o600))
	v.root("policy", "write", "agent", policy)
	token := strings.TrimSpace(v.root("token", "create", "-policy=agent", "-field=token"))
	neverLog(token)

	dir := t.TempDir()
	rendered := filepath.Join(dir, "passphrase.txt")
	agent := startAgent(t, v, token, dir, `
template {
  contents    = "{{ with secret \"sms/passphrase/demo-task-0001\" }}{{ .Data.passphrase }}{{ end }}"
  destination = "`+rendered+`"
  perms       = "0600"
}
`)
	readRendered := func() string { b, _ := os.ReadFile(rendered); return string(b) }
	waitFor(t, 60*time.Second, "the agent to render the passphrase", func() bool { return readRendered() == passphrase })

	fake.SetTask("demo-task-0001", "rotated-passphrase-99")
	neverLog("rotated-passphrase-99")
	waitFor(t, 60*time.Second, "the agent to render the new passphrase", func() bool {
		return readRendered() == "rotated-passphrase-99"
	})
	fi, err := os.Stat(rendered)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	agent.stop()
}

// 6. restart: same storage, unseal, config intact and reads work.
func TestRestartKeepsConfig(t *testing.T) {
	v := newVault(t, "restart")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken, "cache_ttl=3m", "request_timeout=7s")
	v.root("read", "sms/passphrase/demo-task-0001")

	v.stop()
	v.start()
	v.unseal(v.unsealKey)

	data, err := v.readJSON(v.rootToken, "sms/config")
	require.NoError(t, err)
	require.Equal(t, fake.URL, data["endpoint"])
	require.EqualValues(t, 180, data["cache_ttl"])
	require.EqualValues(t, 7, data["request_timeout"])
	require.Equal(t, true, data["token_set"])
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	require.EqualValues(t, 2, fake.Stats().Requests, "the cache lives in memory: a restart empties it")
}

// 7. plugin crash: SIGKILL the plugin process; Vault restarts it.
//
// What Vault 1.21 guarantees: its plugin client notices a dead plugin once it
// has reaped the process; it logs "plugin process exited ... id=<pid>" and,
// a moment later, marks the connection shut down. From then on, the next
// request restarts the plugin and is retried on the new process. A request
// that reaches the dead connection before that point fails with a 500
// "rpc error: code = Unavailable". The moment between the log line and the
// mark is short but not bounded (a goroutine of Vault's must run; under a
// load average of 9 on 2 cores two back-to-back reads fell into it). So the
// test waits for the log line, then reads every 100 ms: every failure must be
// that 500, a read must succeed within 10 s, and from the first success on
// every read succeeds.
func TestPluginCrashRecovers(t *testing.T) {
	v := newVault(t, "crash")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken)
	v.root("read", "sms/passphrase/demo-task-0001")

	pids := pluginPIDs(t, v)
	require.NotEmpty(t, pids, "the plugin process must be running")
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	waitFor(t, 20*time.Second, "Vault to notice the plugin's exit", func() bool {
		logs, _ := os.ReadFile(v.logPath)
		for _, pid := range pids {
			if !strings.Contains(string(logs), "plugin process exited: plugin="+filepath.Join(pluginDir, pluginName)+" id="+strconv.Itoa(pid)+" ") {
				return false
			}
		}
		return true
	})

	failures := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		if status == http.StatusOK {
			require.Contains(t, body, passphrase)
			break
		}
		failures++
		require.Equal(t, http.StatusInternalServerError, status, body)
		require.Contains(t, body, "Unavailable", "only a read that met the dead connection may fail")
		require.True(t, time.Now().Before(deadline), "no good read within 10 s of the crash (%d failed)", failures)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d read(s) failed with 500 Unavailable before Vault restarted the plugin", failures)
	for i := 0; i < 20; i++ {
		status, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		require.Equal(t, http.StatusOK, status, "once restarted, the plugin keeps serving: %s", body)
	}
	newPIDs := pluginPIDs(t, v)
	require.NotEmpty(t, newPIDs)
	require.NotEqual(t, pids, newPIDs, "Vault must have started a new plugin process")
}

// 8. upgrade: register a second version, tune, reload.
func TestPluginUpgrade(t *testing.T) {
	v := newVault(t, "upgrade")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken)
	v.root("read", "sms/passphrase/demo-task-0001")
	require.Equal(t, version1, runningVersion(t, v, "sms/"))

	v.register(version2)
	v.root("secrets", "tune", "-plugin-version="+version2, "sms/")
	v.root("plugin", "reload", "-plugin="+pluginName)

	require.Equal(t, version2, runningVersion(t, v, "sms/"))
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	data, err := v.readJSON(v.rootToken, "sms/config")
	require.NoError(t, err)
	require.Equal(t, fake.URL, data["endpoint"], "the config survives the upgrade")
}

func runningVersion(t *testing.T, v *vaultServer, mount string) string {
	t.Helper()
	out := v.root("secrets", "list", "-detailed", "-format=json")
	var mounts map[string]struct {
		RunningVersion string `json:"running_plugin_version"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &mounts))
	return mounts[mount].RunningVersion
}

// pluginPIDs lists the plugin processes in the server's process group.
func pluginPIDs(t *testing.T, v *vaultServer) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), filepath.Join(pluginDir, pluginName)) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == v.cmd.Process.Pid && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processAlive is false for exited and zombie processes.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}
