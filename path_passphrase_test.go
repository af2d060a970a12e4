package sms

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

func TestPassphraseReadReturnsTaskAndPassphraseWithoutLease(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)

	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, map[string]any{"task_id": testTask, "passphrase": testPassphrase}, resp.Data)
	require.Nil(t, resp.Secret, "a passphrase is not a revocable credential: no lease")
	require.Empty(t, resp.Warnings)
	require.EqualValues(t, 1, env.fake.Stats().ByAuth["token"])
}

func TestPassphraseTaskIDValidationComesFirst(t *testing.T) {
	env := newTestEnv(t)
	// Not even configured: validation must come before the config check.
	for _, id := range []string{"", strings.Repeat("a", 37), "a/b", "a b", "a%2Fb", "..", ".", "tâche", "a?b", "a\x00b"} {
		_, status, msg := env.readPassphrase(id)
		require.Equal(t, http.StatusBadRequest, status, "task_id %q", id)
		require.Contains(t, msg, "task_id", "task_id %q", id)
		status, msg = env.del("passphrase/" + id)
		require.Equal(t, http.StatusBadRequest, status, "delete of task_id %q", id)
		require.Contains(t, msg, "task_id")
	}

	env.configure(nil)
	_, status, _ := env.readPassphrase("../config")
	require.Equal(t, http.StatusBadRequest, status)
	require.Zero(t, env.fake.Stats().Requests, "invalid task ids must never reach SMS")

	// Every allowed character, at both length limits.
	env.fake.SetTask("A", "one")
	env.fake.SetTask("aZ09-_.x"+strings.Repeat("y", 28), "long")
	for id, want := range map[string]string{"A": "one", "aZ09-_.x" + strings.Repeat("y", 28): "long"} {
		resp, status, msg := env.readPassphrase(id)
		require.Equal(t, http.StatusOK, status, msg)
		require.Equal(t, want, resp.Data["passphrase"])
	}
}

func TestPassphraseIsCachedForTTL(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "60s"})

	for i := 0; i < 5; i++ {
		resp, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusOK, status, msg)
		require.Equal(t, testPassphrase, resp.Data["passphrase"])
	}
	require.EqualValues(t, 1, env.fake.Stats().Requests)

	// The passphrase changes upstream: the cache keeps serving until the TTL ends.
	env.fake.SetTask(testTask, "rotated")
	env.clock.Advance(59 * time.Second)
	resp, _, _ := env.readPassphrase(testTask)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	require.EqualValues(t, 1, env.fake.Stats().Requests)

	env.clock.Advance(2 * time.Second)
	resp, _, _ = env.readPassphrase(testTask)
	require.Equal(t, "rotated", resp.Data["passphrase"])
	require.EqualValues(t, 2, env.fake.Stats().Requests)

	stats := env.cacheStats()
	require.EqualValues(t, 1, stats["entries"])
	require.EqualValues(t, 5, stats["hits"])
	require.EqualValues(t, 2, stats["misses"])
	require.EqualValues(t, 2, stats["upstream_requests"])
	require.EqualValues(t, 0, stats["upstream_errors"])
}

func TestPassphraseCacheOff(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": 0})
	for i := 0; i < 3; i++ {
		_, status, _ := env.readPassphrase(testTask)
		require.Equal(t, http.StatusOK, status)
	}
	require.EqualValues(t, 3, env.fake.Stats().Requests)
	require.EqualValues(t, 0, env.cacheStats()["entries"])
}

func TestPassphraseCacheIsBounded(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_max_entries": 2})
	for _, id := range []string{"t1", "t2", "t3"} {
		env.fake.SetTask(id, "p-"+id)
		_, status, _ := env.readPassphrase(id)
		require.Equal(t, http.StatusOK, status)
	}
	require.EqualValues(t, 2, env.cacheStats()["entries"])
	env.readPassphrase("t1") // the least recently used was evicted
	require.EqualValues(t, 4, env.fake.Stats().Requests)
	env.readPassphrase("t3")
	require.EqualValues(t, 4, env.fake.Stats().Requests)
}

func TestConcurrentColdReadsShareOneUpstreamCall(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	// Slow SMS down so that every reader arrives while the first call is in flight.
	env.fake.SetLatency(200 * time.Millisecond)

	const readers = 50
	var wg sync.WaitGroup
	var ok atomic.Int32
	start := make(chan struct{})
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, status, _ := env.readPassphrase(testTask)
			if status == http.StatusOK && resp.Data["passphrase"] == testPassphrase {
				ok.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, readers, ok.Load())
	require.EqualValues(t, 1, env.fake.Stats().Requests, "50 concurrent cold reads must make one upstream call")
}

func TestCoalescedCallSurvivesTheFirstCallerGoingAway(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.fake.SetLatency(300 * time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	firstDone := make(chan int)
	go func() {
		resp, err := env.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.ReadOperation, Path: "passphrase/" + testTask, Storage: env.storage, MountPoint: "sms/",
		})
		status, _ := vaultStatus(&logical.Request{Operation: logical.ReadOperation}, resp, err)
		firstDone <- status
	}()
	require.Eventually(t, func() bool { return env.fake.Stats().Requests == 1 }, 5*time.Second, 5*time.Millisecond)

	secondDone := make(chan *logical.Response)
	go func() {
		resp, _, _ := env.readPassphrase(testTask)
		secondDone <- resp
	}()
	cancel() // the first client hangs up
	require.Equal(t, http.StatusGatewayTimeout, <-firstDone)
	resp := <-secondDone
	require.Equal(t, testPassphrase, resp.Data["passphrase"], "the second reader must still get the shared answer")
	require.EqualValues(t, 1, env.fake.Stats().Requests)
}

func TestDeleteEvictsOneTaskWithoutCallingSMS(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.fake.SetTask("other", "other-pass")
	env.readPassphrase(testTask)
	env.readPassphrase("other")
	require.EqualValues(t, 2, env.fake.Stats().Requests)

	status, msg := env.del("passphrase/" + testTask)
	require.Equal(t, http.StatusNoContent, status, msg)
	require.EqualValues(t, 2, env.fake.Stats().Requests, "evicting must not call SMS")

	env.readPassphrase(testTask)
	env.readPassphrase("other")
	require.EqualValues(t, 3, env.fake.Stats().Requests, "only the evicted task is fetched again")
	require.EqualValues(t, 1, env.fake.Stats().ByTask["other"])
}

func TestErrorsAreNeverCached(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 500, Times: 1}))
	_, status, _ := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)

	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	require.EqualValues(t, 2, env.fake.Stats().Requests)
}

// TestErrorContract checks, for each way SMS can answer, the status and the
// message a Vault client sees.
func TestErrorContract(t *testing.T) {
	cases := []struct {
		name     string
		fault    *smsfake.Fault
		task     string
		config   map[string]any
		status   int
		contains []string
		absent   []string
	}{
		{name: "unknown task", task: "no-such-task", status: 404,
			contains: []string{"no-such-task", "SMS.1801", "X-Request-Id"}},
		{name: "403 refused", fault: &smsfake.Fault{Mode: smsfake.FaultStatus, Status: 403}, status: 502,
			contains: []string{"refused", "HTTP 403", "SMS.9004", "X-Request-Id", "sms:server:getTaskPassphrase"},
			absent:   []string{"ENCODED-AUTHZ", "encoded_authorization_message"}},
		{name: "401 expired token", fault: &smsfake.Fault{Mode: smsfake.FaultStatus, Status: 401}, status: 502,
			contains: []string{"refused", "HTTP 401", "APIGW.0301"}},
		{name: "wrong token", config: map[string]any{"token": "not-the-right-token"}, status: 502,
			contains: []string{"refused", "APIGW.0301"}},
		{name: "500", fault: &smsfake.Fault{Mode: smsfake.FaultStatus, Status: 500}, status: 502,
			contains: []string{"HTTP 500", "SMS.0001"}},
		{name: "503", fault: &smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}, status: 502,
			contains: []string{"HTTP 503"}},
		{name: "malformed JSON", fault: &smsfake.Fault{Mode: smsfake.FaultMalformedJSON}, status: 502,
			contains: []string{"malformed JSON", "X-Request-Id"}},
		{name: "oversized body", fault: &smsfake.Fault{Mode: smsfake.FaultOversized}, status: 502,
			contains: []string{"over 64 KiB"}},
		{name: "mismatched task_id", fault: &smsfake.Fault{Mode: smsfake.FaultMismatchedTaskID}, status: 502,
			contains: []string{"different task_id"}, absent: []string{"not-yours"}},
		{name: "passphrase too long", fault: &smsfake.Fault{Mode: smsfake.FaultLongPassphrase}, status: 502,
			contains: []string{"over 255 characters"}, absent: []string{strings.Repeat("p", 100)}},
		{name: "connection reset", fault: &smsfake.Fault{Mode: smsfake.FaultResetBeforeHeaders}, status: 502,
			contains: []string{"could not be reached"}},
		{name: "slow answer", fault: &smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Delay: smsfake.Duration(10 * time.Second)},
			config: map[string]any{"request_timeout": "1s"}, status: 504,
			contains: []string{"request_timeout"}},
		{name: "redirect", fault: &smsfake.Fault{Mode: smsfake.FaultRedirect, Location: "https://elsewhere.example/"}, status: 502,
			contains: []string{"redirect", "HTTP 302"}},
		{name: "token echoed by SMS", fault: &smsfake.Fault{Mode: smsfake.FaultEchoToken}, status: 502,
			contains: []string{"<redacted>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			cfg := map[string]any{"max_retries": 0}
			for k, v := range tc.config {
				cfg[k] = v
			}
			env.configure(cfg)
			if tc.fault != nil {
				require.NoError(t, env.fake.AddFault(*tc.fault))
			}
			task := tc.task
			if task == "" {
				task = testTask
			}

			_, status, msg := env.readPassphrase(task)
			require.Equal(t, tc.status, status, msg)
			for _, s := range tc.contains {
				require.Contains(t, msg, s)
			}
			for _, s := range tc.absent {
				require.NotContains(t, msg, s)
			}
			assertNoSecrets(t, msg)

			// The mount is not broken: the next good read works.
			env.fake.ClearFaults()
			if tc.config["token"] != nil {
				env.configure(map[string]any{"token": testToken})
			}
			resp, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, testPassphrase, resp.Data["passphrase"])
		})
	}
}

func TestGatewayNotFoundIsAConfigProblemNotAMissingTask(t *testing.T) {
	env := newTestEnv(t)
	// An endpoint with a path prefix the gateway does not know.
	env.configure(map[string]any{"endpoint": env.srv.URL + "/wrong-prefix"})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "APIGW.0101")
	require.Contains(t, msg, "check the endpoint")
}

func TestRedirectsAreNeverFollowedAndCredentialsStayHome(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()

	env := newTestEnv(t)
	env.configure(nil)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultRedirect, Location: other.URL + "/steal"}))
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Zero(t, elsewhere.Load(), "the redirect target must receive nothing")
}

func TestTaskIDIsPathEscapedUpstream(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.fake.SetTask("a.b_c-d", "dotted")
	resp, status, msg := env.readPassphrase("a.b_c-d")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "dotted", resp.Data["passphrase"])
	require.EqualValues(t, 1, env.fake.Stats().ByTask["a.b_c-d"])
}

func TestNoSecretInLogsAtTraceLevel(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"max_retries": 1})
	env.readPassphrase(testTask)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoToken}))
	env.readPassphrase("another")
	env.fake.ClearFaults()
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 403}))
	env.readPassphrase("third")

	logs := env.logs.String()
	require.Contains(t, logs, "upstream request", "upstream requests are logged at debug")
	require.Contains(t, logs, "request_id")
	require.Contains(t, logs, "[WARN]", "failures are logged at warn")
	// assertNoSecretsLogged runs at cleanup; check here too so the failure is local.
	assertNoSecrets(t, logs)
	require.NotContains(t, logs, "ENCODED-AUTHZ")
}

// TestFastPathMatchesTheFramework: HandleRequest serves plain reads of valid
// ids itself; whatever the situation, the answer must be the one the
// framework's own routing gives.
func TestFastPathMatchesTheFramework(t *testing.T) {
	type outcome struct {
		status   int
		msg      string
		data     map[string]any
		warnings []string
		lease    bool
	}
	run := func(env *testEnv, viaFramework bool, taskID string) outcome {
		req := &logical.Request{Operation: logical.ReadOperation, Path: "passphrase/" + taskID, Storage: env.storage, MountPoint: "sms/"}
		var resp *logical.Response
		var err error
		if viaFramework {
			resp, err = env.b.Backend.HandleRequest(context.Background(), req)
		} else {
			resp, err = env.b.HandleRequest(context.Background(), req)
		}
		status, msg := vaultStatus(req, resp, err)
		o := outcome{status: status, msg: msg}
		if resp != nil && !resp.IsError() {
			o.data, o.warnings, o.lease = resp.Data, resp.Warnings, resp.Secret != nil
		}
		return o
	}
	scenarios := map[string]func(env *testEnv) string{
		"not configured": func(env *testEnv) string { return testTask },
		"cold read":      func(env *testEnv) string { env.configure(nil); return testTask },
		"cached read":    func(env *testEnv) string { env.configure(nil); env.readPassphrase(testTask); return testTask },
		"unknown task":   func(env *testEnv) string { env.configure(nil); return "nope" },
		"upstream down": func(env *testEnv) string {
			env.configure(map[string]any{"max_retries": 0})
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 500}))
			return testTask
		},
		"stale": func(env *testEnv) string {
			env.configure(map[string]any{"cache_ttl": "60s", "stale_if_error": "1h", "max_retries": 0})
			env.readPassphrase(testTask)
			env.clock.Advance(2 * time.Minute)
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}))
			return testTask
		},
		"invalid id": func(env *testEnv) string { env.configure(nil); return "a..b/c" },
	}
	for name, setup := range scenarios {
		t.Run(name, func(t *testing.T) {
			fast, slow := newTestEnv(t), newTestEnv(t)
			id := setup(fast)
			setup(slow)
			got, want := run(fast, false, id), run(slow, true, id)
			// Request ids differ between the two stand-ins; compare the rest.
			got.msg, want.msg = stripRequestID(got.msg), stripRequestID(want.msg)
			for _, o := range []*outcome{&got, &want} {
				for i := range o.warnings {
					o.warnings[i] = stripRequestID(o.warnings[i])
				}
			}
			require.Equal(t, want, got)
		})
	}
}

func stripRequestID(msg string) string {
	if i := strings.Index(msg, "X-Request-Id"); i >= 0 {
		return msg[:i]
	}
	return msg
}
