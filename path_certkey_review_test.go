package sms

// Regression tests from the adversarial review of the certkey paths: each
// failed before its fix.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// newTeamAEnv serves taskA1 in ep-team-a, with certificates valid for
// validity, a one-hour cache and a role team-a for the project.
func newTeamAEnv(t *testing.T, validity time.Duration) *testEnv {
	t.Helper()
	env := newTestEnvWith(t, func(o *smsfake.Options) {
		o.CertValidity = validity
		o.Tasks = map[string]string{taskA1: "pp-a1-0123456789"}
		o.TaskMeta = map[string]smsfake.TaskMeta{
			taskA1: {Name: "team-a-web01", EnterpriseProjectID: "ep-team-a", State: "SYNCING"},
		}
	})
	env.configure(map[string]any{"cache_ttl": "1h", "max_retries": 0})
	status, msg := env.write("roles/team-a", map[string]any{"enterprise_project_ids": []any{"ep-team-a"}})
	require.Equal(t, http.StatusNoContent, status, msg)
	return env
}

// A role read whose scope check goes upstream, slowly, judges the cached
// certificate when the check is done, not when the read began.
func TestRoleCertKeyIsJudgedAfterASlowScopeCheck(t *testing.T) {
	env := newTeamAEnv(t, 10*time.Minute)
	path := "roles/team-a/certkey/" + taskA1
	_, status, msg := env.read("roles/team-a/passphrase/" + taskA1) // metadata cached at T0
	require.Equal(t, http.StatusOK, status, msg)
	env.clock.Advance(55 * time.Minute)
	_, status, msg = env.readCertKey(path, false) // cached until its NotAfter, T0+65m
	require.Equal(t, http.StatusOK, status, msg)
	old := env.fake.CertKeyOf(taskA1)["cert"]

	env.clock.Advance(6 * time.Minute) // metadata past cache_ttl; the certificate still valid
	env.fake.RotateCertKey(taskA1)
	var calls atomic.Int32
	env.b.fetchHook = func() {
		if calls.Add(1) == 1 {
			env.clock.Advance(5 * time.Minute) // a slow ShowTask: now T0+66m
		}
	}
	resp, status, msg := env.readCertKey(path, false)
	env.b.fetchHook = nil
	require.Equal(t, http.StatusOK, status, msg)
	require.NotEqual(t, old, resp.Data["cert"], "the cached certificate was served past its NotAfter")
	require.Equal(t, env.fake.CertKeyOf(taskA1)["cert"], resp.Data["cert"])
}

// stale_if_error: a fallback is judged when the failure is known.
func TestStaleCertKeyIsNotServedPastItsNotAfterAfterASlowFailure(t *testing.T) {
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.CertValidity = 10 * time.Minute })
	env.configure(map[string]any{"cache_ttl": "1m", "stale_if_error": "24h", "max_retries": 0})
	path := "certkey/" + testTask
	_, status, msg := env.readCertKey(path, false)
	require.Equal(t, http.StatusOK, status, msg)

	env.clock.Advance(9*time.Minute + 50*time.Second) // past cache_ttl, 10s before NotAfter
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, Call: "certkey"}))
	env.b.fetchHook = func() { env.clock.Advance(20 * time.Second) } // SMS takes 20s to fail
	_, status, msg = env.readCertKey(path, false)
	env.b.fetchHook = nil
	require.Equal(t, http.StatusBadGateway, status, msg)

	// The same failure within the window, and before the NotAfter, is
	// still covered.
	env2 := newTestEnv(t)
	env2.configure(map[string]any{"cache_ttl": "1m", "stale_if_error": "1h", "max_retries": 0})
	_, status, msg = env2.readCertKey(path, false)
	require.Equal(t, http.StatusOK, status, msg)
	env2.clock.Advance(2 * time.Minute)
	require.NoError(t, env2.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, Call: "certkey"}))
	resp, status, msg := env2.readCertKey(path, false)
	require.Equal(t, http.StatusOK, status, msg)
	require.NotEmpty(t, resp.Warnings)
}

// A delete that completes during a role read's scope check is not undone by
// that read.
func TestRoleReadDoesNotServeWhatADeleteEvictedDuringItsScopeCheck(t *testing.T) {
	env := newTeamAEnv(t, 24*time.Hour)
	path := "roles/team-a/certkey/" + taskA1
	_, status, msg := env.read("roles/team-a/passphrase/" + taskA1)
	require.Equal(t, http.StatusOK, status, msg)
	env.clock.Advance(30 * time.Minute)
	_, status, msg = env.readCertKey(path, false)
	require.Equal(t, http.StatusOK, status, msg)
	env.clock.Advance(31 * time.Minute) // metadata stale, certkey fresh
	var calls atomic.Int32
	env.b.fetchHook = func() {
		if calls.Add(1) == 1 {
			env.fake.RotateCertKey(taskA1)
			status, msg := env.del("certkey/" + taskA1)
			require.Equal(t, http.StatusNoContent, status, msg)
		}
	}
	resp, status, msg := env.readCertKey(path, false)
	env.b.fetchHook = nil
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, env.fake.CertKeyOf(taskA1)["cert"], resp.Data["cert"], "served what the delete had evicted")
}

// certKeyUpstream points the engine at a server answering every call with
// body, and counts the calls.
func certKeyUpstream(t *testing.T, env *testEnv, body func() string) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body())
	}))
	t.Cleanup(srv.Close)
	status, msg := env.write("config", map[string]any{"endpoint": srv.URL, "token": testToken, "max_retries": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	return &n
}

// A 200 without any certificate or key (or an error body sent with 200) is a
// 502, and not cached: Agent would otherwise write empty files.
func TestCertKeyAnswerWithNothingInItIsA502AndNotCached(t *testing.T) {
	env := newTestEnv(t)
	n := certKeyUpstream(t, env, func() string {
		return `{"error_code":"SMS.0211","error_msg":"failed to send certificate decryption key to target server"}`
	})
	for i := 0; i < 2; i++ {
		_, status, msg := env.readCertKey("certkey/"+testTask, false)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "without any certificate or key")
	}
	require.EqualValues(t, 2, n.Load(), "not cached")
}

// A private key in a broken block ahead of a certificate does not pass as
// part of the certificate field.
func TestCertKeyRefusesAKeyHiddenInABrokenBlock(t *testing.T) {
	env := newTestEnv(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	lines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	hidden := "-----BEGIN PRIVATE KEY-----\n" + strings.Join(lines[1:len(lines)-1], "\n") + "\n-----END CERTIFICATE-----\n"
	certPEM := env.fake.CertKeyOf(testTask)["cert"]
	certKeyUpstream(t, env, func() string {
		b, _ := json.Marshal(map[string]string{"cert": hidden + certPEM, "private_key": keyPEM})
		return string(b)
	})
	resp, status, msg := env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Nil(t, resp)
	require.Contains(t, msg, "cert that is not PEM of one or more CERTIFICATE blocks")
	require.NotContains(t, msg, lines[1][:16])
}

// Whatever a refused field holds, PEM headers included, appears in no
// error, warning or log line.
func TestRefusedCertKeyFieldsAreNotEchoed(t *testing.T) {
	env := newTestEnv(t)
	const marker = "MARKER-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
	block := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": marker, "Comment": marker}, Bytes: []byte(marker)}))
	for _, body := range []map[string]string{
		{"private_key": block + block},
		{"cert": block},
		{"cert": env.fake.CertKeyOf(testTask)["cert"] + "trailer " + marker},
		{"private_key": marker + block},
		{"cert": strings.Replace(block, "RSA PRIVATE KEY", "CERTIFICATE", 2)},
	} {
		certKeyUpstream(t, env, func() string { b, _ := json.Marshal(body); return string(b) })
		resp, status, msg := env.readCertKey("certkey/"+testTask, false)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Nil(t, resp)
		require.NotContains(t, msg, "MARKER")
	}
	require.NotContains(t, env.logs.String(), "MARKER")
}

func TestEnableCACertIsABoolean(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	for v, want := range map[any]int{"yes": 400, "1": 200, "true": 200, "TRUE": 200, 1: 200, "": 200, "0": 200} {
		_, status, msg := env.request(logical.ReadOperation, "certkey/"+testTask, map[string]any{"enable_ca_cert": v})
		require.Equal(t, want, status, "%v: %s", v, msg)
		if status == http.StatusBadRequest {
			require.Contains(t, msg, "enable_ca_cert must be a boolean")
		}
	}
}

// Concurrent direct and role reads of both kinds, deletes and cache reads:
// every read answers with a certificate (and -race stays quiet).
func TestConcurrentCertKeyReadsAndDeletes(t *testing.T) {
	env := newTeamAEnv(t, time.Hour)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				switch (g + i) % 5 {
				case 0, 1:
					resp, status, _ := env.readCertKey("certkey/"+taskA1, i%2 == 0)
					if status != http.StatusOK || resp.Data["cert"] == nil {
						bad.Add(1)
					}
				case 2:
					resp, status, _ := env.readCertKey("roles/team-a/certkey/"+taskA1, i%2 == 1)
					if status != http.StatusOK || resp.Data["cert"] == nil {
						bad.Add(1)
					}
				case 3:
					env.del("certkey/" + taskA1)
				case 4:
					env.read("cache")
					env.readPassphrase(taskA1)
				}
			}
		}(g)
	}
	wg.Wait()
	require.Zero(t, bad.Load())
}

// The same for a passphrase read through a role.
func TestRolePassphraseReadDoesNotServeWhatADeleteEvictedDuringItsScopeCheck(t *testing.T) {
	env := newTeamAEnv(t, 24*time.Hour)
	path := "roles/team-a/passphrase/" + taskA1
	_, status, msg := env.read(path)
	require.Equal(t, http.StatusOK, status, msg)
	env.clock.Advance(30 * time.Minute)
	_, status, msg = env.read("passphrase/" + taskA1) // refreshes nothing: both fresh
	require.Equal(t, http.StatusOK, status, msg)
	status, _ = env.del("passphrase/" + taskA1)
	require.Equal(t, http.StatusNoContent, status)
	_, status, msg = env.read("passphrase/" + taskA1) // the passphrase cached again at T0+30m
	require.Equal(t, http.StatusOK, status, msg)
	env.clock.Advance(31 * time.Minute) // no metadata: the role read goes upstream for it
	var calls atomic.Int32
	env.b.fetchHook = func() {
		if calls.Add(1) == 1 {
			env.fake.SetTask(taskA1, "pp-a1-changed-0123")
			status, msg := env.del("passphrase/" + taskA1)
			require.Equal(t, http.StatusNoContent, status, msg)
		}
	}
	resp, status, msg := env.read(path)
	env.b.fetchHook = nil
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "pp-a1-changed-0123", resp.Data["passphrase"], "served what the delete had evicted")
}

// base64Runs returns the stretches of base64, as long as a third of a PEM
// line, that are not hex (request ids): no message or log line of the
// engine holds one, so one there is DER.
func base64Runs(text string) []string {
	var out []string
	for _, run := range regexp.MustCompile(`[A-Za-z0-9+/]{24,}`).FindAllString(text, -1) {
		if strings.Trim(run, "0123456789abcdef") != "" {
			out = append(out, run)
		}
	}
	return out
}

// Issue 17, defect 6: a private key's bytes labelled CERTIFICATE, in cert,
// after target_mgmt_cert's certificate or in ca, are a 502 on the direct
// and the role path, with no PEM or base64 in the message or the log, and
// nothing cached.
func TestCertKeyKeyBytesInACertificateBlockAreA502(t *testing.T) {
	for _, tc := range []struct {
		mode, field string
		ca          bool
	}{
		{smsfake.FaultKeyInCertBlock, "cert", false},
		{smsfake.FaultKeyAfterMgmtCert, "target_mgmt_cert", false},
		{smsfake.FaultKeyInCABlock, "ca", true},
	} {
		for _, path := range []string{"certkey/" + taskA1, "roles/team-a/certkey/" + taskA1} {
			t.Run(tc.mode+" "+path, func(t *testing.T) {
				env := newTeamAEnv(t, time.Hour)
				require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: tc.mode, Call: "certkey"}))
				resp, status, msg := env.readCertKey(path, tc.ca)
				require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
				require.Nil(t, resp)
				require.Contains(t, msg, "answered with a "+tc.field+" that is not")
				for where, text := range map[string]string{"the message": msg, "the log": env.logs.String()} {
					require.NotContains(t, text, "-----", where)
					require.Empty(t, len(base64Runs(text)), "%s holds runs of base64", where)
				}
				require.EqualValues(t, 0, env.cacheStats()["certkey_entries"], "nothing cached")

				env.fake.ClearFaults()
				resp, status, msg = env.readCertKey(path, tc.ca)
				require.Equal(t, http.StatusOK, status, msg)
				require.NotEmpty(t, resp.Data["cert_not_after"], "a served answer has a cert_not_after")
			})
		}
	}
}
