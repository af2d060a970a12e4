//go:build integration

package integration

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The hardening issue's seven defects, each through a real Vault: what a
// hostile upstream, or a caller with a narrow grant, must not be able to do.

const (
	hardPassword = "hard-pw-4b6d8f0a2c4e6a8c"
	hardWrongPW  = "hard-wrong-9e7c5a3b1d9f"
	hardSecret   = "hard-secret-7a5c3e1b9d7f5a3c"
)

func init() { neverLog(hardPassword, hardWrongPW, hardSecret) }

// assertNoPieceOf fails if text holds any 12-character piece of secret,
// without showing either.
func assertNoPieceOf(t *testing.T, where, text, secret string) {
	t.Helper()
	for i := 0; i+12 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+12]) {
			t.Errorf("%s contains a piece of a credential (offset %d of %d)", where, i, len(secret))
			return
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// Defect 1: an answer whose body breaks off, on a retryable status, does not
// kill the plugin process: the read gets a 502, the same process keeps
// serving, and the cache counters survive.
func TestBrokenUpstreamAnswersNeverKillThePlugin(t *testing.T) {
	v := newVault(t, "broken")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken, "max_retries=1")
	v.root("read", "sms/passphrase/demo-task-0001")
	pids := pluginPIDs(t, v)
	require.NotEmpty(t, pids)

	for _, shape := range []string{smsfake.BodyTruncate, smsfake.BodyReset, smsfake.BodyCorruptGzip, smsfake.BodyShortLength} {
		for _, status := range []int{503, 429, 200, 404} {
			require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: status, Body: shape}))
			code, body := v.call(v.rootToken, "GET", "sms/passphrase/"+taskA)
			require.Equal(t, http.StatusBadGateway, code, "%s %d: %s", shape, status, body)
			require.Contains(t, body, "SMS")
			fake.ClearFaults()
		}
	}
	require.Equal(t, pids, pluginPIDs(t, v), "the plugin process survived every answer")
	stats, err := v.readJSON(v.rootToken, "sms/cache")
	require.NoError(t, err)
	require.EqualValues(t, 1, stats["entries"], "the cache survived")
	require.EqualValues(t, 16, stats["upstream_errors"])
	require.Equal(t, "team-a-passphrase-77", strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/"+taskA)))
}

// Defect 2: a secret sent with the wrong JSON type appears in no response,
// no Vault log line and no audit entry in clear.
func TestSecretsOfTheWrongJSONTypeAreNeverEchoed(t *testing.T) {
	v := newVault(t, "jsontypes")
	fake := standardFake(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)
	v.root("secrets", "enable", "-path=sms", pluginName)
	c := v.api(v.rootToken)

	for _, data := range []map[string]any{
		{"endpoint": fake.URL, "token": []any{hardSecret}},
		{"endpoint": fake.URL, "access_key": "AK", "secret_key": map[string]any{"a": hardSecret}},
		{"endpoint": fake.URL, "username": "u", "domain_name": "d", "password": []any{map[string]any{"x": hardSecret}}},
	} {
		_, err := c.Logical().Write("sms/config", data) // a create: the config does not exist yet
		require.Error(t, err)
		require.Equal(t, http.StatusBadRequest, statusOf(err), "%v", err)
		require.NotContains(t, err.Error(), hardSecret)
	}
	// The same as updates of an existing config.
	v.root("write", "sms/config", "endpoint="+fake.URL, "token="+smsToken)
	_, err := c.Logical().Write("sms/config", map[string]any{"token": []any{hardSecret}})
	require.Equal(t, http.StatusBadRequest, statusOf(err), "%v", err)
	require.Contains(t, err.Error(), "token must be a string")
	require.NotContains(t, err.Error(), hardSecret)

	audit := readFile(t, auditPath)
	require.False(t, strings.Contains(audit, hardSecret), "the audit log holds no secret in clear")
	require.True(t, strings.Contains(audit, `"path":"sms/config"`), "the writes were audited")
	// Vault's own log is checked for the secret when the test ends.
}

// Defect 3: an update that changes where credentials go must carry them.
func TestConfigWriterCannotRedirectStoredCredentials(t *testing.T) {
	v := newVault(t, "redirect")
	fake := startFake(t, smsfake.Options{
		Tokens: []string{smsToken},
		Users:  []smsfake.User{{Domain: itDomain, Name: itUser, Password: hardPassword}},
		Tasks:  map[string]string{"demo-task-0001": passphrase},
	})
	sink := smsfake.NewSink()
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)

	v.mount("sms", fake, smsToken)
	v.root("secrets", "enable", "-path=sms-iam", pluginName)
	v.root("write", "sms-iam/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"username="+itUser, "password="+hardPassword, "domain_name="+itDomain)

	for mount, change := range map[string]string{"sms": "endpoint=" + sinkSrv.URL, "sms-iam": "iam_endpoint=" + sinkSrv.URL} {
		_, errOut, err := v.cli(v.rootToken, "write", mount+"/config", change)
		require.Error(t, err, mount)
		require.Contains(t, errOut, "Code: 400")
		require.Contains(t, errOut, "changes where, or for whom, the engine uses its credentials")
		require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", mount+"/passphrase/demo-task-0001")))
	}
	require.Empty(t, sink.Received(), "no request reached the other host")

	// With the secret in the same write, the endpoint may move.
	v.root("write", "sms/config", "endpoint="+sinkSrv.URL, "token="+smsToken)
	_, _, err := v.cli(v.rootToken, "read", "sms/passphrase/demo-task-0001")
	require.Error(t, err)
	require.True(t, sink.Contains(smsToken), "the operator who supplied the token chose where it goes")
}

// Defect 4: IAM failing near the end of a token's life does not fail reads
// while the token is still valid.
func TestIAMOutageNearTokenExpiryThroughVault(t *testing.T) {
	const lifetime = 40 * time.Second // renewal due at 36 s, usable until 38 s
	v := newVault(t, "iam-outage")
	fake := startFake(t, smsfake.Options{
		Users:         []smsfake.User{{Domain: itDomain, Name: itUser, Password: hardPassword}},
		Tasks:         map[string]string{"demo-task-0001": passphrase},
		TokenLifetime: lifetime,
	})
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL, "cache_ttl=0", "max_retries=0",
		"username="+itUser, "password="+hardPassword, "domain_name="+itDomain)
	before := time.Now()
	code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	after := time.Now()
	require.Equal(t, http.StatusOK, code, body)
	require.Less(t, after.Sub(before), 1500*time.Millisecond, "the 2 s window below needs a first read quicker than that")
	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Status: 503}))

	// Past the renewal point (the token was issued no later than `after`).
	time.Sleep(time.Until(after.Add(36*time.Second + 100*time.Millisecond)))
	// Over HTTP, not the CLI: no process to start inside the window.
	code, body = v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, "the token is still valid: %s", body)
	waitFor(t, 5*time.Second, "a renewal attempt", func() bool { return fake.Stats().IAMTokenRequests >= 2 })

	// Past expiry less the skew margin (the token was issued no sooner than `before`).
	time.Sleep(time.Until(before.Add(lifetime)))
	code, body = v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	require.Equal(t, http.StatusBadGateway, code, body)
	require.Contains(t, body, "IAM failed to issue a token")
	require.Zero(t, fake.Stats().Rejected, "no request carried an expired token")

	fake.ClearFaults()
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
}

// Defect 5: a wrong IAM password cannot drive the user into IAM's lockout.
func TestWrongIAMPasswordDoesNotLockTheUserOut(t *testing.T) {
	v := newVault(t, "lockout")
	fake := startFake(t, smsfake.Options{
		Users:        []smsfake.User{{Domain: itDomain, Name: itUser, Password: hardPassword}},
		Tasks:        map[string]string{"demo-task-0001": passphrase},
		LockoutAfter: 3,
	})
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"username="+itUser, "password="+hardWrongPW, "domain_name="+itDomain)
	for i := 0; i < 10; i++ {
		code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		require.Equal(t, http.StatusBadGateway, code, body)
		require.Contains(t, body, "IAM refused")
	}
	st := fake.Stats()
	require.EqualValues(t, 1, st.IAMTokenRequests, "ten reads, one login attempt")
	require.EqualValues(t, 1, st.IAMLoginFailures)
	logs := readFile(t, v.logPath)
	require.Equal(t, 1, strings.Count(logs, "IAM refused the engine's credentials; no login is attempted"), "one error line per backoff")

	v.root("write", "sms/config", "password="+hardPassword)
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")),
		"the fixed password works at once: the user was never locked")
}

// Defect 6: a 4 KB IAM token quoted back by SMS reaches no client, log or
// audit entry, whole or in pieces.
func TestQuotedIAMTokensAreRedactedEverywhere(t *testing.T) {
	v := newVault(t, "echo")
	fake := startFake(t, smsfake.Options{
		Users: []smsfake.User{{Domain: itDomain, Name: itUser, Password: hardPassword}},
		Tasks: map[string]string{"demo-task-0001": passphrase},
	})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL, "max_retries=0",
		"username="+itUser, "password="+hardPassword, "domain_name="+itDomain)

	for _, prefix := range []int{0, 200} {
		require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoCredentials, Status: 401, EchoPrefix: prefix}))
		code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		require.Equal(t, http.StatusBadGateway, code)
		require.True(t, strings.Contains(body, `\u003credacted\u003e`), "the response says <redacted>") // JSON-escaped
		for _, tok := range fake.IssuedTokens() {
			assertNoPieceOf(t, "the response", body, tok)
		}
		fake.ClearFaults()
	}
	tokens := fake.IssuedTokens()
	require.NotEmpty(t, tokens)
	require.Len(t, tokens[0], 4096)
	v.stop()
	for _, tok := range tokens {
		assertNoPieceOf(t, "the audit log", readFile(t, auditPath), tok)
		assertNoPieceOf(t, "Vault's log", readFile(t, v.logPath), tok)
	}
}

// Defect 7: `vault delete sms/passphrase/<id>` beats a fetch in flight.
func TestDeleteBeatsAFetchInFlightThroughVault(t *testing.T) {
	v := newVault(t, "inflight")
	fake := standardFake(t)
	v.mount("sms", fake, smsToken)
	// The answer in flight is computed (old passphrase), then held.
	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200, Body: smsfake.BodyHold, Times: 1}))
	var wg sync.WaitGroup
	var first string
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, _, _ := v.cli(v.rootToken, "read", "-field=passphrase", "sms/passphrase/demo-task-0001")
		first = strings.TrimSpace(out)
	}()
	waitFor(t, 10*time.Second, "the first fetch to reach SMS", func() bool { return fake.Stats().Requests == 1 })

	fake.SetTask("demo-task-0001", "rotated-while-in-flight")
	neverLog("rotated-while-in-flight")
	v.root("delete", "sms/passphrase/demo-task-0001")
	require.Equal(t, "rotated-while-in-flight", strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	fake.Release()
	wg.Wait()
	require.Equal(t, passphrase, first, "the read in flight got its own answer")
	require.Equal(t, "rotated-while-in-flight", strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")),
		"and it was not stored over the newer one")
	require.EqualValues(t, 2, fake.Stats().Requests)
}

func TestEndpointWithAnOutOfRangePortIsRefused(t *testing.T) {
	v := newVault(t, "port")
	v.root("secrets", "enable", "-path=sms", pluginName)
	_, errOut, err := v.cli(v.rootToken, "write", "sms/config", "endpoint=https://h:99999", "token="+smsToken)
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "port between 1 and 65535")
}
