package sms

import (
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// TestFaultMatrix drives every upstream fault through the backend and checks
// what a Vault client sees, how many requests reached SMS, that no secret
// leaks, that no goroutine is left behind and that the next read works.
func TestFaultMatrix(t *testing.T) {
	type fault = smsfake.Fault
	const (
		slow = smsfake.Duration(30 * time.Second)
	)
	cases := []struct {
		name     string
		fault    *fault
		endpoint string         // "closed" or "tls"; default: the plain stand-in
		method   string         // "access_key" or "password"; default: token
		config   map[string]any // on top of max_retries=2, request_timeout=5s
		status   int
		attempts uint64 // requests the client sent
		contains []string
	}{
		{name: "connection refused", endpoint: "closed", status: 502, attempts: 3,
			contains: []string{"could not be reached", "connection refused", "3 attempts"}},
		{name: "reset before headers", fault: &fault{Mode: smsfake.FaultResetBeforeHeaders}, status: 502, attempts: 3,
			contains: []string{"could not be reached"}},
		{name: "reset mid-body", fault: &fault{Mode: smsfake.FaultResetMidBody}, status: 502, attempts: 3,
			contains: []string{"could not be read whole", "connection reset", "HTTP 200"}},
		{name: "TLS with an untrusted certificate", endpoint: "tls", status: 502, attempts: 1,
			contains: []string{"certificate", "set ca_cert"}},
		{name: "TLS trusted through ca_cert", endpoint: "tls", config: map[string]any{"ca_cert": "from-server"}, status: 200, attempts: 1},
		{name: "429 with Retry-After", fault: &fault{Mode: smsfake.FaultStatus, Status: 429, RetryAfter: "1"}, status: 502, attempts: 3,
			contains: []string{"SMS throttled the request", "APIGW.0308", "HTTP 429"}},
		{name: "429 without Retry-After", fault: &fault{Mode: smsfake.FaultStatus, Status: 429}, status: 502, attempts: 3,
			contains: []string{"SMS throttled the request"}},
		{name: "429 asking for more than the cap", fault: &fault{Mode: smsfake.FaultStatus, Status: 429, RetryAfter: "120"}, status: 502, attempts: 1,
			contains: []string{"SMS throttled the request"}},
		{name: "500", fault: &fault{Mode: smsfake.FaultStatus, Status: 500}, status: 502, attempts: 3, contains: []string{"HTTP 500"}},
		{name: "502", fault: &fault{Mode: smsfake.FaultStatus, Status: 502}, status: 502, attempts: 3, contains: []string{"HTTP 502", "APIGW.0202"}},
		{name: "503", fault: &fault{Mode: smsfake.FaultStatus, Status: 503}, status: 502, attempts: 3, contains: []string{"HTTP 503"}},
		{name: "504", fault: &fault{Mode: smsfake.FaultStatus, Status: 504}, status: 502, attempts: 3, contains: []string{"HTTP 504"}},
		{name: "501 is not retried", fault: &fault{Mode: smsfake.FaultStatus, Status: 501}, status: 502, attempts: 1, contains: []string{"HTTP 501"}},
		{name: "503 once, then fine", fault: &fault{Mode: smsfake.FaultStatus, Status: 503, Times: 1}, status: 200, attempts: 2},
		{name: "slow headers", fault: &fault{Mode: smsfake.FaultSlowHeaders, Delay: slow}, config: map[string]any{"request_timeout": "1s"},
			status: 504, attempts: 1, contains: []string{"did not answer within request_timeout"}},
		{name: "slow body", fault: &fault{Mode: smsfake.FaultSlowBody, Delay: slow}, config: map[string]any{"request_timeout": "1s"},
			status: 504, attempts: 1, contains: []string{"did not answer within request_timeout"}},
		{name: "malformed JSON", fault: &fault{Mode: smsfake.FaultMalformedJSON}, status: 502, attempts: 1, contains: []string{"malformed JSON"}},
		{name: "oversized body", fault: &fault{Mode: smsfake.FaultOversized}, status: 502, attempts: 1, contains: []string{"over 64 KiB"}},
		{name: "mismatched task_id", fault: &fault{Mode: smsfake.FaultMismatchedTaskID}, status: 502, attempts: 1, contains: []string{"different task_id"}},
		{name: "expired token (401)", fault: &fault{Mode: smsfake.FaultStatus, Status: 401}, status: 502, attempts: 1,
			contains: []string{"refused", "HTTP 401"}},
		{name: "403", fault: &fault{Mode: smsfake.FaultStatus, Status: 403}, status: 502, attempts: 1, contains: []string{"SMS.9004"}},
		{name: "400 is not retried", fault: &fault{Mode: smsfake.FaultStatus, Status: 400}, status: 502, attempts: 1, contains: []string{"HTTP 400"}},
		{name: "redirect", fault: &fault{Mode: smsfake.FaultRedirect, Location: "http://127.0.0.1:1/"}, status: 502, attempts: 1,
			contains: []string{"redirect"}},
		// Defect 1 of the hardening issue: the last attempt on a retryable
		// status whose body cannot be read crashed the plugin.
		{name: "503 whose body breaks off", fault: &fault{Mode: smsfake.FaultStatus, Status: 503, Body: smsfake.BodyTruncate},
			status: 502, attempts: 3, contains: []string{"could not be read whole", "HTTP 503", "3 attempts"}},
		{name: "429 reset in the middle of its body", fault: &fault{Mode: smsfake.FaultStatus, Status: 429, Body: smsfake.BodyReset},
			status: 502, attempts: 3, contains: []string{"could not be read whole", "HTTP 429"}},
		{name: "corrupt gzip", fault: &fault{Mode: smsfake.FaultStatus, Status: 200, Body: smsfake.BodyCorruptGzip},
			status: 502, attempts: 3, contains: []string{"could not be read whole", "flate: corrupt input"}},
		{name: "500 with a short Content-Length", fault: &fault{Mode: smsfake.FaultStatus, Status: 500, Body: smsfake.BodyShortLength},
			status: 502, attempts: 3, contains: []string{"HTTP 500"}},
		{name: "huge error body", fault: &fault{Mode: smsfake.FaultStatus, Status: 503, Body: smsfake.BodyHuge, Size: 4 << 20},
			status: 502, attempts: 3, contains: []string{"HTTP 503"}},
		{name: "503 whose body stalls", fault: &fault{Mode: smsfake.FaultStatus, Status: 503, Body: smsfake.BodySlow, Delay: slow},
			config: map[string]any{"request_timeout": "1s"}, status: 504, attempts: 1, contains: []string{"request_timeout"}},
		{name: "IAM token endpoint breaks off", method: "password",
			fault:  &fault{Mode: smsfake.FaultStatus, Target: "iam", Status: 201, Body: smsfake.BodyReset},
			status: 502, attempts: 0, contains: []string{"IAM sent an answer that could not be read whole"}},
		// Defect 6: credentials quoted back, whole or cut, are redacted.
		{name: "4 KB IAM token quoted back", method: "password", fault: &fault{Mode: smsfake.FaultEchoCredentials, Status: 401},
			status: 502, attempts: 2, contains: []string{"<redacted>"}},
		{name: "signature and security token quoted back", method: "access_key",
			fault:  &fault{Mode: smsfake.FaultEchoCredentials, Status: 403},
			status: 502, attempts: 1, contains: []string{"<redacted>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Snapshot now; check in a cleanup registered first, so that it
			// runs after every other cleanup (servers closed, backend cleaned).
			existing := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, existing) })
			env := newTestEnvWith(t, func(o *smsfake.Options) {
				o.SecurityTokens = map[string]string{testAccessKey: testSecurityTok}
			})

			cfg := map[string]any{"max_retries": 2, "request_timeout": "5s"}
			for k, v := range tc.config {
				cfg[k] = v
			}
			switch tc.endpoint {
			case "closed":
				l, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				cfg["endpoint"] = "http://" + l.Addr().String()
				l.Close()
			case "tls":
				tlsSrv := httptest.NewTLSServer(env.fake)
				t.Cleanup(tlsSrv.Close)
				cfg["endpoint"] = tlsSrv.URL
				if cfg["ca_cert"] == "from-server" {
					cfg["ca_cert"] = certPEM(tlsSrv.Certificate().Raw)
				}
			}
			switch tc.method {
			case "password":
				cfg["iam_endpoint"] = env.srv.URL
				env.configurePassword(cfg)
			case "access_key":
				env.configure(mergeMaps(cfg, map[string]any{"token": "", "access_key": testAccessKey,
					"secret_key": testSecretKey, "security_token": testSecurityTok}))
			default:
				env.configure(cfg)
			}
			if tc.fault != nil {
				require.NoError(t, env.fake.AddFault(*tc.fault))
			}

			resp, status, msg := env.readPassphrase(testTask)
			require.Equal(t, tc.status, status, env.safe(msg))
			if status == http.StatusOK {
				require.Equal(t, testPassphrase, resp.Data["passphrase"])
			}
			for _, s := range tc.contains {
				env.requireContains(msg, s)
			}
			assertNoSecrets(t, msg)
			for _, tok := range env.fake.IssuedTokens() {
				assertNoFragment(t, "the message", msg, tok)
			}
			require.False(t, regexp.MustCompile(`Signature=[0-9a-f]{12}`).MatchString(msg), "no signature in the message")
			require.Equal(t, tc.attempts, env.b.stats.requests.Load(), "requests sent to SMS")
			if tc.endpoint == "" {
				require.EqualValues(t, tc.attempts, env.fake.Stats().Requests, "requests SMS received")
			}

			// A good read afterwards, on the same mount.
			env.fake.ClearFaults()
			if tc.endpoint == "closed" || (tc.endpoint == "tls" && tc.status != http.StatusOK) {
				env.configure(map[string]any{"endpoint": env.srv.URL, "ca_cert": ""})
			}
			_, status, msg = env.readPassphrase("another-task-" + "0001")
			require.Equal(t, http.StatusNotFound, status, "the mount must answer normally: %s", msg)
			env.fake.SetTask("fresh-task", "fresh")
			resp, status, msg = env.readPassphrase("fresh-task")
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, "fresh", resp.Data["passphrase"])
		})
	}
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestRetryAfterIsHonoured(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_retries": 1})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 429, RetryAfter: "1", Times: 1}))
	start := time.Now()
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	// A lower bound only: a slow machine cannot make this flaky.
	require.GreaterOrEqual(t, time.Since(start), time.Second, "the retry must wait for Retry-After")
	require.EqualValues(t, 2, env.fake.Stats().Requests)
}

func TestRetryThatWouldPassTheDeadlineReportsTheLastAnswer(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_retries": 5, "request_timeout": "2s"})
	// Waiting 3 s would pass the 2 s deadline: give up now, with SMS's answer.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, RetryAfter: "3"}))
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "HTTP 503")
	require.EqualValues(t, 1, env.fake.Stats().Requests)
}

func TestRateLimitSpacesRequestsAndFailsThoseThatCannotWait(t *testing.T) {
	env := newTestEnv(t)
	// One request every two seconds, reads give up after one second.
	env.configure(map[string]any{"max_upstream_rps": 0.5, "request_timeout": "1s", "cache_ttl": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.Contains(t, msg, "max_upstream_rps")
	require.EqualValues(t, 1, env.fake.Stats().Requests, "the limited read never reached SMS")
	assertNoSecrets(t, msg)
}

func TestRateLimitLetsReadsThatCanWaitThrough(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_upstream_rps": 20, "request_timeout": "10s", "cache_ttl": 0})
	// Slow SMS down so that every reader arrives while the first call is in
	// flight; otherwise a late reader rightly makes a call of its own.
	env.fake.SetLatency(200 * time.Millisecond)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, status, msg := env.readPassphrase(testTask)
			if status != http.StatusOK {
				t.Errorf("%d %s", status, msg)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, 1, env.fake.Stats().Requests, "concurrent reads of one task still share a call")

	env.fake.SetLatency(0)
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		env.fake.SetTask(id, "p")
		_, status, msg := env.readPassphrase(id)
		require.Equal(t, http.StatusOK, status, msg)
	}
	require.EqualValues(t, 5, env.fake.Stats().Requests)
}

func TestStaleIfErrorServesExpiredEntriesWithAWarning(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "60s", "stale_if_error": "10m", "max_retries": 0})
	env.readPassphrase(testTask)

	env.clock.Advance(5 * time.Minute)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}))
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "stale")
	require.Contains(t, resp.Warnings[0], "5m0s")
	require.Contains(t, resp.Warnings[0], "HTTP 503")
	assertNoSecrets(t, resp.Warnings[0])
	require.EqualValues(t, 1, env.cacheStats()["stale_served"])

	// A task SMS says is gone is not served stale.
	env.fake.ClearFaults()
	env.fake.DeleteTask(testTask)
	_, status, _ = env.readPassphrase(testTask)
	require.Equal(t, http.StatusNotFound, status)

	// Past cache_ttl + stale_if_error, the error comes through.
	env.fake.SetTask(testTask, testPassphrase)
	env.readPassphrase(testTask)
	env.clock.Advance(11 * time.Minute)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}))
	_, status, _ = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
}

func TestThrottlingThatOutlastsTheRetriesSaysSo(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_retries": 1})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 429}))
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.Contains(t, msg, "SMS throttled the request")
	require.Contains(t, msg, "2 attempts")
}
