package sms

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Credentials the stand-in accepts in unit tests. Each is long and unique, so
// that finding one in a log or a message cannot be a coincidence.
const (
	testToken       = "tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
	testAccessKey   = "AKTEST4W7Q2N8R5L1M6K"
	testSecretKey   = "sk-9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
	testSecurityTok = "sectok-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
	testUser        = "migration-bot"
	testPassword    = "pw-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"
	testDomain      = "acme-cloud"
	testTask        = "0f3c2a9e-1b4d-4c8a-9e7f-6a5b4c3d2e10"
	testPassphrase  = "pp-7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
)

// fakeClock is a settable clock shared by the backend and the stand-in, so that
// TTLs and token lifetimes can be crossed without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a backend wired to an in-process stand-in of SMS and IAM.
type testEnv struct {
	t       *testing.T
	b       *backend
	storage logical.Storage
	fake    *smsfake.Server
	srv     *httptest.Server
	clock   *fakeClock
	logs    *syncBuffer
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil)
}

// newTestEnvWith lets a test change the stand-in's options (token lifetime,
// lockout...) before it starts.
func newTestEnvWith(t *testing.T, tune func(*smsfake.Options)) *testEnv {
	t.Helper()
	clock := newFakeClock()
	opts := smsfake.Options{
		Tokens:        []string{testToken},
		AccessKeys:    map[string]string{testAccessKey: testSecretKey},
		Users:         []smsfake.User{{Domain: testDomain, Name: testUser, Password: testPassword}},
		Tasks:         map[string]string{testTask: testPassphrase},
		TokenLifetime: time.Hour,
		Now:           clock.Now,
	}
	if tune != nil {
		tune(&opts)
	}
	fake := smsfake.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "sms-test", Level: hclog.Trace, Output: logs})
	b := newBackend(logger, clock.Now)
	conf := logical.TestBackendConfig()
	conf.Logger = logger
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour}
	require.NoError(t, b.Setup(context.Background(), conf))

	env := &testEnv{t: t, b: b, storage: &logical.InmemStorage{}, fake: fake, srv: srv, clock: clock, logs: logs}
	t.Cleanup(func() {
		b.Clean(context.Background())
		env.assertNoSecretsLogged()
	})
	return env
}

// request runs one request through the backend the way Vault would and
// returns the status and message a Vault client would see.
func (e *testEnv) request(op logical.Operation, path string, data map[string]any) (*logical.Response, int, string) {
	e.t.Helper()
	req := &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    e.storage,
		MountPoint: "sms/",
	}
	resp, err := e.b.HandleRequest(context.Background(), req)
	status, msg := vaultStatus(req, resp, err)
	return resp, status, msg
}

// vaultStatus maps a backend answer to an HTTP status exactly as Vault's HTTP
// layer does.
func vaultStatus(req *logical.Request, resp *logical.Response, err error) (int, string) {
	status, err := logical.RespondErrorCommon(req, resp, err)
	if err != nil {
		logical.AdjustErrorStatusCode(&status, err)
		return status, err.Error()
	}
	if status == 0 {
		if resp == nil {
			return http.StatusNoContent, ""
		}
		return http.StatusOK, ""
	}
	return status, ""
}

func (e *testEnv) write(path string, data map[string]any) (int, string) {
	_, status, msg := e.request(logical.UpdateOperation, path, data)
	return status, msg
}

func (e *testEnv) read(path string) (*logical.Response, int, string) {
	return e.request(logical.ReadOperation, path, nil)
}

func (e *testEnv) del(path string) (int, string) {
	_, status, msg := e.request(logical.DeleteOperation, path, nil)
	return status, msg
}

// configure writes a token config pointing at the stand-in, plus extra.
func (e *testEnv) configure(extra map[string]any) {
	e.t.Helper()
	data := map[string]any{"endpoint": e.srv.URL, "token": testToken}
	for k, v := range extra {
		data[k] = v
	}
	status, msg := e.write("config", data)
	require.Equal(e.t, http.StatusNoContent, status, msg)
}

func (e *testEnv) readPassphrase(taskID string) (*logical.Response, int, string) {
	return e.read("passphrase/" + taskID)
}

func (e *testEnv) cacheStats() map[string]any {
	e.t.Helper()
	resp, status, msg := e.read("cache")
	require.Equal(e.t, http.StatusOK, status, msg)
	return resp.Data
}

// allSecrets are every credential and passphrase the tests use.
var allSecrets = []string{testToken, testSecretKey, testSecurityTok, testPassword, testPassphrase}

func (e *testEnv) assertNoSecretsLogged() {
	e.t.Helper()
	logs := e.logs.String()
	for _, s := range allSecrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("a secret (%s...) appears in the backend's log", s[:4])
		}
	}
}

// assertNoSecrets fails if text contains a credential or a passphrase. The
// failure names only the secret's first characters, so that the test's own
// output cannot leak it.
func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	if len(secrets) == 0 {
		secrets = allSecrets
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret (%s...) appears in: %.60q...", s[:4], strings.ReplaceAll(text, s, "<SECRET>"))
		}
	}
}

func TestFactoryReportsVersionAndPaths(t *testing.T) {
	conf := logical.TestBackendConfig()
	b, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	require.Equal(t, logical.TypeLogical, b.Type())

	rv, ok := b.(interface{ PluginVersion() logical.PluginVersion })
	require.True(t, ok)
	require.Equal(t, Version, rv.PluginVersion().Version)
	require.Contains(t, b.SpecialPaths().SealWrapStorage, "config")
}

func TestPathHelpDescribesEveryPathAndField(t *testing.T) {
	env := newTestEnv(t)
	for path, fields := range map[string][]string{
		"config": {"endpoint", "region", "token", "cache_ttl", "cache_max_entries", "request_timeout", "ca_cert",
			"access_key", "secret_key", "security_token", "project_id", "domain_id",
			"iam_endpoint", "username", "password", "domain_name", "max_retries", "max_upstream_rps", "stale_if_error"},
		"passphrase/x": {"task_id"},
		"cache":        {},
	} {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.HelpOperation, Path: path, Storage: env.storage,
		})
		require.NoError(t, err, path)
		help := resp.Data["help"].(string)
		require.NotEmpty(t, help, path)
		for _, f := range fields {
			require.Contains(t, help, f, "path-help of %s lacks %s", path, f)
		}
	}

	// Secret fields are marked sensitive for the UI and OpenAPI.
	for _, p := range env.b.Paths {
		for name, schema := range p.Fields {
			isSecret := false
			for _, s := range secretFields {
				isSecret = isSecret || s == name
			}
			sensitive := schema.DisplayAttrs != nil && schema.DisplayAttrs.Sensitive
			require.Equal(t, isSecret, sensitive, "field %s of %s", name, p.Pattern)
		}
	}
}

func TestInvalidateOfConfigDropsClientAndCache(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.NotNil(t, env.b.conn.Load())
	require.Equal(t, 1, env.b.cache.len())

	// Another node rotated the credential (same generation): the client is
	// dropped, the cache is kept.
	cfg, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.NoError(t, storeConfig(context.Background(), env.storage, cfg))
	env.b.invalidate(context.Background(), "config")
	require.Nil(t, env.b.conn.Load())
	_, status, _ = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 1, env.fake.Stats().Requests, "answered from the cache kept")

	// Another node changed the config (a new generation): the next read
	// loads it and the cache is flushed.
	cfg.Generation++
	require.NoError(t, storeConfig(context.Background(), env.storage, cfg))
	env.b.invalidate(context.Background(), "config")
	require.Nil(t, env.b.conn.Load())
	_, status, _ = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 2, env.fake.Stats().Requests, "fetched again after the flush")
	require.Equal(t, 1, env.b.cache.len(), "and the new answer is cached")

	// Other keys leave both alone.
	env.b.invalidate(context.Background(), "something-else")
	require.NotNil(t, env.b.conn.Load())
	require.Equal(t, 1, env.b.cache.len())
}

func TestConfigSurvivesANewBackendOnTheSameStorage(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "90s"})

	// A restart: a fresh backend over the same storage.
	b2 := newBackend(hclog.NewNullLogger(), time.Now)
	require.NoError(t, b2.Setup(context.Background(), logical.TestBackendConfig()))
	first := env.b
	env.b = b2
	defer func() { env.b = first }()
	resp, status, msg := env.read("config")
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 90, resp.Data["cache_ttl"])
	require.Equal(t, true, resp.Data["token_set"])

	resp, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	b2.Clean(context.Background())
}

func TestPeriodicFuncRemovesExpiredEntries(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "60s"})
	_, status, _ := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1, env.b.cache.len())

	env.clock.Advance(59 * time.Second)
	require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	require.Equal(t, 1, env.b.cache.len(), "a fresh entry must stay")

	env.clock.Advance(2 * time.Second)
	require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	require.Equal(t, 0, env.b.cache.len())
}

// safe masks every test credential, and every 8-character piece of one,
// including the IAM tokens the stand-in issued, for a test's failure output:
// a test of redaction must not print what it failed to redact.
func (e *testEnv) safe(text string) string {
	secrets := append(append([]string(nil), allSecrets...), e.fake.IssuedTokens()...)
	for _, s := range secrets {
		for i := 0; i+8 <= len(s); i++ {
			text = strings.ReplaceAll(text, s[i:i+8], "<SECRET>")
		}
	}
	return text
}

// requireContains is require.Contains for text that may hold a credential:
// its failure shows the text masked.
func (e *testEnv) requireContains(text, want string) {
	e.t.Helper()
	if !strings.Contains(text, want) {
		e.t.Fatalf("%q does not contain %q", e.safe(text), want)
	}
}
