package sms

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

func (e *testEnv) configurePassword(extra map[string]any) {
	e.t.Helper()
	data := map[string]any{
		"endpoint": e.srv.URL, "iam_endpoint": e.srv.URL,
		"username": testUser, "password": testPassword, "domain_name": testDomain,
		"cache_ttl": 0, // every read goes to SMS, so each needs a token
	}
	for k, v := range extra {
		data[k] = v
	}
	status, msg := e.write("config", data)
	require.Equal(e.t, http.StatusNoContent, status, msg)
}

func TestIAMTokenIsReusedAcrossReads(t *testing.T) {
	env := newTestEnv(t)
	env.configurePassword(nil)
	for i := 0; i < 10; i++ {
		resp, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusOK, status, msg)
		require.Equal(t, testPassphrase, resp.Data["passphrase"])
	}
	st := env.fake.Stats()
	require.EqualValues(t, 10, st.ByAuth["iam"])
	require.EqualValues(t, 1, st.IAMTokenRequests, "ten reads, one IAM call")
}

func TestConcurrentReadsWithoutATokenMakeOneIAMCall(t *testing.T) {
	env := newTestEnv(t)
	env.configurePassword(nil)
	for i := 0; i < 20; i++ {
		env.fake.SetTask(fmt.Sprintf("task-%d", i), "p")
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, status, msg := env.readPassphrase(fmt.Sprintf("task-%d", i))
			if status != http.StatusOK {
				t.Errorf("read %d: %d %s", i, status, msg)
			}
		}(i)
	}
	wg.Wait()
	require.EqualValues(t, 1, env.fake.Stats().IAMTokenRequests)
	require.EqualValues(t, 20, env.fake.Stats().ByAuth["iam"])
}

func TestIAMTokenIsRenewedShortlyBeforeItExpires(t *testing.T) {
	env := newTestEnv(t) // the stand-in issues tokens valid for one hour
	env.configurePassword(nil)
	env.readPassphrase(testTask)
	require.EqualValues(t, 1, env.fake.Stats().IAMTokenRequests)

	env.clock.Advance(50 * time.Minute)
	_, status, _ := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 1, env.fake.Stats().IAMTokenRequests, "still well inside its lifetime")

	// A tenth of the lifetime before expiry, the token is replaced in the
	// background: the read does not wait for IAM.
	env.clock.Advance(5 * time.Minute)
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Eventually(t, func() bool { return env.fake.Stats().IAMTokensIssued == 2 }, 5*time.Second, time.Millisecond)

	// The next reads use the new token, past the old one's expiry too.
	env.clock.Advance(6 * time.Minute)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 2, env.fake.Stats().IAMTokenRequests)
	require.Zero(t, env.fake.Stats().Rejected, "no request may ever carry an expired token")
}

func TestRevokedIAMTokenIsRenewedAndTheReadRetriedOnce(t *testing.T) {
	env := newTestEnv(t)
	env.configurePassword(nil)
	env.readPassphrase(testTask)

	env.fake.RevokeTokens() // e.g. the user's permissions changed
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	st := env.fake.Stats()
	require.EqualValues(t, 2, st.IAMTokenRequests)
	require.EqualValues(t, 1, st.Rejected)
	require.EqualValues(t, 3, st.Requests)

	// If SMS keeps refusing, the engine retries only once and reports it.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 401}))
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.Contains(t, msg, "refused")
	require.EqualValues(t, 5, env.fake.Stats().Requests, "one retry after a fresh token, no more")
	require.EqualValues(t, 3, env.fake.Stats().IAMTokenRequests)
}

func TestStaticTokenIsNotRetriedOn401(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"token": "stale-token-0000000000"})
	_, status, _ := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.EqualValues(t, 1, env.fake.Stats().Requests)
}

func TestIAMFailuresAre502WithIAMsCodeAndNoPassword(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		env := newTestEnv(t)
		env.configurePassword(map[string]any{"password": "pw-wrong-1234567890"})
		_, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "IAM")
		require.Contains(t, msg, "The username or password is wrong")
		require.Contains(t, msg, "HTTP 401")
		assertNoSecrets(t, msg, testPassword, "pw-wrong-1234567890")
		require.Zero(t, env.fake.Stats().Requests, "SMS is not called without a token")
		assertNoSecrets(t, env.logs.String(), "pw-wrong-1234567890")
	})

	t.Run("IAM unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://" + l.Addr().String()
		l.Close()
		env := newTestEnv(t)
		env.configurePassword(map[string]any{"iam_endpoint": closed, "max_retries": 1})
		_, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "IAM could not be reached")
		assertNoSecrets(t, msg)
	})

	t.Run("IAM failing", func(t *testing.T) {
		env := newTestEnv(t)
		env.configurePassword(map[string]any{"max_retries": 0})
		require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503, Target: "iam", Times: 1}))
		_, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "IAM failed to issue a token")
		// The failure is not remembered: the next read gets a token.
		_, status, msg = env.readPassphrase(testTask)
		require.Equal(t, http.StatusOK, status, msg)
	})
}

func TestIAMTokenEchoedBySMSIsRedacted(t *testing.T) {
	env := newTestEnv(t)
	env.configurePassword(nil)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoToken}))
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.Contains(t, msg, "<redacted>")
	require.NotContains(t, msg, "MIIfake", "an IAM token must never reach the client")
	require.NotContains(t, env.logs.String(), "MIIfake")
}

func TestConfigWriteDropsTheIAMToken(t *testing.T) {
	env := newTestEnv(t)
	env.configurePassword(nil)
	env.readPassphrase(testTask)
	env.configurePassword(map[string]any{"request_timeout": "9s"})
	env.readPassphrase(testTask)
	require.EqualValues(t, 2, env.fake.Stats().IAMTokenRequests, "a new config must not reuse a token obtained under the old one")
}

func TestAccessKeyMethodEndToEnd(t *testing.T) {
	env := newTestEnv(t)
	status, msg := env.write("config", map[string]any{
		"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey, "project_id": "proj-1",
	})
	require.Equal(t, http.StatusNoContent, status, msg)
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	require.EqualValues(t, 1, env.fake.Stats().ByAuth["aksk"])
	require.Contains(t, env.fake.Stats().SignedHeaders, "x-project-id")

	// A wrong SK is an upstream refusal (502), and the message holds no secret.
	status, msg = env.write("config", map[string]any{"secret_key": "sk-wrong-0000000000000000"})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status)
	require.Contains(t, msg, "APIGW.0301")
	assertNoSecrets(t, msg, testSecretKey, "sk-wrong-0000000000000000")
}
