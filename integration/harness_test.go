//go:build integration

// Package integration drives the plugin inside real Vault server processes
// with the real vault CLI, Vault Agent and github.com/hashicorp/vault/api. Only
// SMS itself is a stand-in (internal/smsfake), served on 127.0.0.1.
//
// Run with `make test-integration` (or `make test`), which builds the plugin
// and provides VAULT_BIN.
package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	pluginName = "vault-plugin-secrets-sms"
	version1   = "v0.1.0"
	version2   = "v0.2.0"
)

var (
	vaultBin  string
	pluginDir string
	// pluginBinaries maps a version to its file name in pluginDir and sha256.
	pluginBinaries = map[string]pluginBinary{}
)

type pluginBinary struct{ file, sha string }

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	vaultBin = os.Getenv("VAULT_BIN")
	if vaultBin == "" {
		fmt.Fprintln(os.Stderr, "VAULT_BIN must name a vault binary (make test-integration sets it from scripts/vault.sh)")
		return 1
	}
	dir, err := os.MkdirTemp("", "sms-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginDir = dir

	// Two builds of the same source that differ only in the version they
	// report, for the upgrade test.
	for _, v := range []string{version1, version2} {
		file := pluginName
		if v != version1 {
			file = pluginName + "-" + v
		}
		out := filepath.Join(dir, file)
		cmd := exec.Command("go", "build", "-ldflags",
			"-X github.com/sms-vault/vault-plugin-secrets-sms.Version="+v, "-o", out, "../cmd/vault-plugin-secrets-sms")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the plugin:", err)
			return 1
		}
		sum, err := fileSHA256(out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pluginBinaries[v] = pluginBinary{file: file, sha: sum}
	}
	return m.Run()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// secretsNeverLogged are values no process log may contain.
var (
	secretsMu          sync.Mutex
	secretsNeverLogged []string
)

func neverLog(values ...string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secretsNeverLogged = append(secretsNeverLogged, values...)
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	secretsMu.Lock()
	defer secretsMu.Unlock()
	for _, s := range secretsNeverLogged {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%s...)", where, s[:4])
		}
	}
}

// vaultServer is one `vault server` process with persistent storage.
type vaultServer struct {
	t          *testing.T
	name       string
	dir        string
	port       int
	addr       string
	configPath string
	logPath    string
	cmd        *exec.Cmd
	done       chan struct{}
	rootToken  string
	unsealKey  string
}

type serverConfig struct {
	port      int      // API port; 0 picks a free one
	raft      bool     // integrated storage instead of the file backend
	nodeID    string   // raft node id
	retryJoin []string // raft peers' API addresses
}

// newVaultProcess writes a config and starts the server; it does not
// initialise it.
func newVaultProcess(t *testing.T, name string, sc serverConfig) *vaultServer {
	t.Helper()
	dir := t.TempDir()
	port := sc.port
	if port == 0 {
		port = freePort(t)
	}
	clusterPort := freePort(t)
	v := &vaultServer{t: t, name: name, dir: dir, port: port, addr: fmt.Sprintf("http://127.0.0.1:%d", port),
		configPath: filepath.Join(dir, "vault.hcl"), logPath: filepath.Join(dir, "vault.log")}

	storage := fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", filepath.Join(dir, "data"))
	if sc.raft {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "raft"), 0o700))
		var joins strings.Builder
		for _, peer := range sc.retryJoin {
			fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = %q\n  }\n", peer)
		}
		// performance_multiplier 1 gives production-speed elections, so that a
		// failover takes seconds, not tens of seconds.
		storage = fmt.Sprintf("storage \"raft\" {\n  path = %q\n  node_id = %q\n  performance_multiplier = 1\n%s}\n",
			filepath.Join(dir, "raft"), sc.nodeID, joins.String())
	}
	config := storage + fmt.Sprintf(`
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
log_level        = "debug"
`, port, clusterPort, port, clusterPort, pluginDir)
	require.NoError(t, os.WriteFile(v.configPath, []byte(config), 0o600))

	v.start()
	t.Cleanup(func() {
		v.stop()
		logs, _ := os.ReadFile(v.logPath)
		assertNoSecrets(t, "the log of Vault "+v.name, string(logs))
		if t.Failed() {
			t.Logf("last lines of the log of Vault %s:\n%s", v.name, tail(string(logs), 40))
		}
	})
	return v
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start launches the process (in its own process group, so that stopping it
// also stops the plugin processes it started) and waits for its listener.
func (v *vaultServer) start() {
	v.t.Helper()
	logFile, err := os.OpenFile(v.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(v.t, err)
	cmd := exec.Command(vaultBin, "server", "-config="+v.configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Plugins inherit TMPDIR and put their gRPC sockets there: inside the
	// test's directory, they are removed even when a test kills the server.
	tmp := filepath.Join(v.dir, "tmp")
	require.NoError(v.t, os.MkdirAll(tmp, 0o700))
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(v.t, cmd.Start())
	v.cmd = cmd
	v.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(v.done)
	}()
	waitFor(v.t, 30*time.Second, "Vault "+v.name+" to listen", func() bool {
		resp, err := http.Get(v.addr + "/v1/sys/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

func (v *vaultServer) signal(sig syscall.Signal) {
	if v.cmd != nil && v.cmd.Process != nil {
		_ = syscall.Kill(-v.cmd.Process.Pid, sig)
	}
}

// stop shuts the server down cleanly.
func (v *vaultServer) stop() {
	if v.cmd == nil {
		return
	}
	v.signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(20 * time.Second):
		v.signal(syscall.SIGKILL)
		<-v.done
	}
	v.cmd = nil
}

// kill ends the server and its plugins at once, as a crash would.
func (v *vaultServer) kill() {
	if v.cmd == nil {
		return
	}
	v.signal(syscall.SIGKILL)
	<-v.done
	v.cmd = nil
}

func (v *vaultServer) initialize() {
	v.t.Helper()
	out := v.cliOK("", "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	var res struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	require.NoError(v.t, json.Unmarshal([]byte(out), &res))
	v.unsealKey, v.rootToken = res.Keys[0], res.RootToken
	neverLog(v.rootToken, v.unsealKey)
}

func (v *vaultServer) unseal(key string) {
	v.t.Helper()
	v.cliOK("", "operator", "unseal", key)
	waitFor(v.t, 30*time.Second, "Vault "+v.name+" to be unsealed and active or standby", func() bool {
		resp, err := http.Get(v.addr + "/v1/sys/health?standbyok=true")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// newVault starts an initialised, unsealed server with file storage and the
// plugin registered at version1.
func newVault(t *testing.T, name string) *vaultServer {
	t.Helper()
	v := newVaultProcess(t, name, serverConfig{})
	v.initialize()
	v.unseal(v.unsealKey)
	v.register(version1)
	return v
}

func (v *vaultServer) register(version string) {
	v.t.Helper()
	bin := pluginBinaries[version]
	v.cliOK(v.rootToken, "plugin", "register", "-sha256="+bin.sha, "-version="+version, "-command="+bin.file, "secret", pluginName)
}

// cli runs the vault CLI against this server with the given token.
func (v *vaultServer) cli(token string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=", "VAULT_CLI_NO_COLOR=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func (v *vaultServer) cliOK(token string, args ...string) string {
	v.t.Helper()
	out, errOut, err := v.cli(token, args...)
	require.NoError(v.t, err, "vault %s: %s", strings.Join(args, " "), errOut)
	return out
}

// root runs the CLI as root and requires success.
func (v *vaultServer) root(args ...string) string {
	v.t.Helper()
	return v.cliOK(v.rootToken, args...)
}

func (v *vaultServer) api(token string) *api.Client {
	v.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = v.addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(v.t, err)
	c.SetToken(token)
	return c
}

// fakeSMS is an in-process SMS/IAM stand-in on 127.0.0.1.
type fakeSMS struct {
	*smsfake.Server
	URL string
}

func startFake(t *testing.T, opts smsfake.Options) *fakeSMS {
	t.Helper()
	s := smsfake.New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fakeSMS{Server: s, URL: srv.URL}
}

// mount enables the plugin at path and configures it against fake with a
// token, plus extra key=value arguments.
func (v *vaultServer) mount(path string, fake *fakeSMS, token string, extra ...string) {
	v.t.Helper()
	v.root("secrets", "enable", "-path="+path, pluginName)
	args := append([]string{"write", path + "/config", "endpoint=" + fake.URL, "token=" + token}, extra...)
	v.root(args...)
}

// readJSON reads a path with the CLI as JSON and returns its data.
func (v *vaultServer) readJSON(token, path string) (map[string]any, error) {
	out, errOut, err := v.cli(token, "read", "-format=json", path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, errOut)
	}
	var secret struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
		LeaseID  string         `json:"lease_id"`
	}
	if err := json.Unmarshal([]byte(out), &secret); err != nil {
		return nil, err
	}
	return secret.Data, nil
}

// statusOf returns the HTTP status of an api error, or 200.
func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return -1
}

// process is a helper process (Vault Agent, the load generator...) that is
// stopped when the test ends, also when it fails.
type process struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// startAgent starts a Vault Agent that logs in with token (from a file in
// dir) and renders the given template stanzas, re-reading static secrets
// every second.
func startAgent(t *testing.T, v *vaultServer, token, dir, templates string) *process {
	t.Helper()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	config := filepath.Join(dir, "agent.hcl")
	require.NoError(t, os.WriteFile(config, []byte(`
vault {
  address = "`+v.addr+`"
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = "`+tokenFile+`"
    }
  }
}
template_config {
  static_secret_render_interval = "1s"
}
`+templates), 0o600))
	return startProcess(t, "vault-agent", vaultBin, "agent", "-config="+config)
}

func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Dir(logPath))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &process{t: t, name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		logs, _ := os.ReadFile(logPath)
		assertNoSecrets(t, "the log of "+name, string(logs))
		if t.Failed() {
			t.Logf("last lines of the log of %s:\n%s", name, tail(string(logs), 30))
		}
	})
	return p
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// call makes a raw Vault API request and returns the status and body, for
// checks of exact statuses (vault/api hides a 404 on read as a nil secret).
func (v *vaultServer) call(token, method, path string) (int, string) {
	v.t.Helper()
	req, err := http.NewRequest(method, v.addr+"/v1/"+path, nil)
	require.NoError(v.t, err)
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
