package sms

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

var certKeyNames = []string{"cert", "private_key", "target_mgmt_cert", "target_mgmt_private_key", "target_data_cert", "target_data_private_key"}

// readCertKey reads certkey/<id> (or a role's), with enable_ca_cert when ca.
func (e *testEnv) readCertKey(path string, ca bool) (*logical.Response, int, string) {
	var data map[string]any
	if ca {
		data = map[string]any{"enable_ca_cert": true}
	}
	return e.request(logical.ReadOperation, path, data)
}

// assertNoKeyMaterial fails if text holds PEM or a piece of any of the
// task's keys, without printing either.
func assertNoKeyMaterial(t *testing.T, where, text string, set map[string]string) {
	t.Helper()
	if strings.Contains(text, "-----BEGIN") || strings.Contains(text, "PRIVATE KEY-----") {
		t.Errorf("%s holds PEM", where)
	}
	for name, v := range set {
		if strings.HasSuffix(name, "private_key") {
			block, _ := pem.Decode([]byte(v))
			require.NotNil(t, block)
			assertNoFragment(t, where, text, string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: block.Bytes}))[16:80])
		}
	}
}

func TestCertKeyServesWhatSMSReturnedWithItsNotAfter(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	want := env.fake.CertKeyOf(testTask)

	resp, status, msg := env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusOK, status, msg)
	require.Nil(t, resp.Secret, "no lease")
	require.Equal(t, testTask, resp.Data["task_id"])
	for _, name := range certKeyNames {
		require.Equal(t, want[name], resp.Data[name], name)
	}
	require.NotContains(t, resp.Data, "ca", "no CA unless asked for")
	block, _ := pem.Decode([]byte(want["cert"]))
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, cert.NotAfter.UTC().Format(time.RFC3339), resp.Data["cert_not_after"])
	require.Contains(t, want["target_mgmt_private_key"], "Proc-Type: 4,ENCRYPTED", "served encrypted, never decrypted")

	// With enable_ca_cert: the CA too, cached apart from the answer without.
	resp, status, msg = env.readCertKey("certkey/"+testTask, true)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, want["ca"], resp.Data["ca"])
	for i := 0; i < 3; i++ {
		env.readCertKey("certkey/"+testTask, false)
		env.readCertKey("certkey/"+testTask, true)
	}
	require.EqualValues(t, 2, env.fake.Stats().CertKeyRequests, "one request per variant per TTL")
	stats := env.cacheStats()
	require.EqualValues(t, 2, stats["certkey_entries"])
	require.EqualValues(t, 6, stats["certkey_hits"])
	require.EqualValues(t, 2, stats["certkey_misses"])

	// No key material in the log.
	assertNoKeyMaterial(t, "the log", env.logs.String(), want)
}

func TestCertKeyDeleteEvictsTheTask(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.readCertKey("certkey/"+testTask, false)
	env.readPassphrase(testTask)
	env.fake.RotateCertKey(testTask)
	resp, _, _ := env.readCertKey("certkey/"+testTask, false)
	require.NotEqual(t, env.fake.CertKeyOf(testTask)["cert"], resp.Data["cert"], "cached until evicted")

	status, msg := env.del("certkey/" + testTask)
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, _, _ = env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, env.fake.CertKeyOf(testTask)["cert"], resp.Data["cert"], "the rotated certificate after the delete")
	require.EqualValues(t, 2, env.fake.Stats().CertKeyRequests)
	require.EqualValues(t, 0, env.cacheStats()["entries"], "the passphrase went with it")
}

func TestCertKeyIsNeverServedPastItsNotAfter(t *testing.T) {
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.CertValidity = 10 * time.Minute })
	env.configure(map[string]any{"cache_ttl": "1h", "stale_if_error": "24h", "max_retries": 0})
	_, status, msg := env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusOK, status, msg)

	env.clock.Advance(9 * time.Minute)
	env.readCertKey("certkey/"+testTask, false)
	require.EqualValues(t, 1, env.fake.Stats().CertKeyRequests, "within cache_ttl and NotAfter: cached")

	// Past NotAfter, SMS is asked again although cache_ttl has not passed;
	// when it fails, the expired entry is not served, stale_if_error or not.
	env.clock.Advance(2 * time.Minute)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, Call: "certkey"}))
	_, status, msg = env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.EqualValues(t, 2, env.fake.Stats().CertKeyRequests)
	require.EqualValues(t, 0, env.cacheStats()["certkey_entries"], "and the periodic sweep drops it")
}

func TestCertKeyAlreadyExpiredIsServedWithAWarningAndNotCached(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultExpiredCert, Call: "certkey"}))
	for i := 1; i <= 2; i++ {
		resp, status, msg := env.readCertKey("certkey/"+testTask, false)
		require.Equal(t, http.StatusOK, status, msg)
		require.Len(t, resp.Warnings, 1)
		require.Contains(t, resp.Warnings[0], "expired")
		require.EqualValues(t, i, env.fake.Stats().CertKeyRequests, "not cached")
	}
}

func TestCertKeyAnswersThatAreNotTheRightPEMAre502sNamingTheField(t *testing.T) {
	for mode, field := range map[string]string{smsfake.FaultMalformedPEM: "cert", smsfake.FaultKeyAsCert: "cert"} {
		t.Run(mode, func(t *testing.T) {
			env := newTestEnv(t)
			env.configure(nil)
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: mode, Call: "certkey"}))
			_, status, msg := env.readCertKey("certkey/"+testTask, false)
			require.Equal(t, http.StatusBadGateway, status, msg)
			require.Contains(t, msg, "answered with a "+field+" that is not PEM")
			require.NotContains(t, msg, "BEGIN")
			require.NotContains(t, msg, "base64")
			require.NotContains(t, env.logs.String(), "BEGIN")
			require.EqualValues(t, 0, env.cacheStats()["certkey_entries"], "errors are never cached")
		})
	}
}

func TestCertKeyErrorContract(t *testing.T) {
	env := newTestEnv(t)
	_, status, msg := env.readCertKey("certkey/a..b/c", false)
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "task_id")
	status, _ = env.del("certkey/a b")
	require.Equal(t, http.StatusBadRequest, status)
	_, status, msg = env.request(logical.ReadOperation, "certkey/"+testTask, map[string]any{"enable_ca_cert": []any{"x"}})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "enable_ca_cert")

	env.configure(map[string]any{"max_retries": 0, "request_timeout": "1s"})
	_, status, msg = env.readCertKey("certkey/no-such-task", false)
	require.Equal(t, http.StatusNotFound, status, msg)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 403, Call: "certkey", Times: 1}))
	_, status, msg = env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "sms:server:getCert")
	for _, shape := range []string{smsfake.BodyTruncate, smsfake.BodyReset, smsfake.BodyCorruptGzip, smsfake.BodyHuge} {
		require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200, Body: shape, Call: "certkey", Times: 1}))
		_, status, msg = env.readCertKey("certkey/"+testTask, false)
		require.Equal(t, http.StatusBadGateway, status, "%s: %s", shape, msg)
	}
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Delay: smsfake.Duration(5 * time.Second), Call: "certkey", Times: 1}))
	_, status, _ = env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusGatewayTimeout, status)
	_, status, msg = env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusOK, status, "the mount keeps serving: %s", msg)
}

func TestRoleCertKeyKeepsToTheScope(t *testing.T) {
	env := newRolesEnv(t)
	resp, status, msg := env.readCertKey("roles/team-a/certkey/"+taskA1, true)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, env.fake.CertKeyOf(taskA1)["private_key"], resp.Data["private_key"])
	require.NotEmpty(t, resp.Data["ca"])

	_, status, other := env.readCertKey("roles/team-a/certkey/"+taskB1, false)
	require.Equal(t, http.StatusForbidden, status, other)
	_, status, missing := env.readCertKey("roles/team-a/certkey/"+taskNo, false)
	require.Equal(t, http.StatusForbidden, status, missing)
	require.Equal(t, strings.Replace(other, taskB1, taskNo, 1), missing)
	require.Zero(t, env.fake.Stats().CertKeyByTask[taskB1], "no certkey request for a task out of scope")
	_, status, _ = env.readCertKey("roles/team-z/certkey/"+taskA1, false)
	require.Equal(t, http.StatusNotFound, status)
}

func TestCertKeyPathHelpMarksTheCertificatesAndKeysSensitive(t *testing.T) {
	env := newTestEnv(t)
	var checked int
	for _, p := range env.b.Paths {
		if !strings.Contains(p.Pattern, "certkey/") {
			continue
		}
		resp := p.Operations[logical.ReadOperation].Properties().Responses[http.StatusOK][0]
		for name, f := range resp.Fields {
			secret := name != "task_id" && name != "cert_not_after"
			require.Equal(t, secret, f.DisplayAttrs != nil && f.DisplayAttrs.Sensitive, "%s of %s", name, p.Pattern)
			checked++
		}
	}
	require.Equal(t, 2*9, checked, "two certkey paths, nine fields each")
}
