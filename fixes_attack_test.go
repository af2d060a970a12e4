package sms

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Vault Enterprise issues a new plugin identity token at every call (iat,
// nbf and exp move with the clock): the "replaced" hook of a remembered
// refusal then sees a new JWT at every read, and every read is a refused
// exchange with IAM, the storm the backoff exists to prevent.
func TestAttackPluginIdentityTokenRefusalIsNotRemembered(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	sys := &identitySystem{}
	sys.issue = func(req *pluginutil.IdentityTokenRequest) (string, error) {
		now := env.clock.Now()
		return env.issuer.Sign(map[string]any{"iss": testIssuer, "aud": req.Audience, "sub": "plugin-identity:sms",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(req.TTL).Unix()})
	}
	withSystem(t, env.testEnv, sys)
	env.env = map[string]string{envIDTokenHosts: "127.0.0.1"} // no file: the plugin identity token is used
	status, msg := env.configureIDToken(map[string]any{"identity_token_audience": testAudience, "cache_ttl": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.fake.DeleteIdentityProvider(testIdP)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	exchanges := env.fake.Stats().IAMKeyCalls["id-token"]
	for i := 0; i < 5; i++ {
		env.clock.Advance(2 * time.Second) // well inside the 30s backoff
		_, status, _ = env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status)
	}
	require.Equal(t, exchanges, env.fake.Stats().IAMKeyCalls["id-token"],
		"a refusal of Vault's plugin identity token is remembered: no exchange per read")
}

// Two refused JWTs taking turns in the file: each read is an exchange, so
// the number of refused exchanges is bounded only by how often the file
// changes, not by the backoff.
func TestAttackIDTokenFileTakingTurnsIsOneExchangePerRead(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	a := env.mint("sub-a")
	status, msg := env.configureIDToken(map[string]any{"cache_ttl": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.clock.Advance(time.Second)
	b := env.mint("sub-b")
	env.fake.DeleteIdentityProvider(testIdP)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	exchanges := env.fake.Stats().IAMKeyCalls["id-token"]
	for i := 0; i < 6; i++ {
		jwt := a
		if i%2 == 1 {
			jwt = b
		}
		require.NoError(t, os.WriteFile(env.file, []byte(jwt), 0o600))
		_, status, _ = env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status)
	}
	require.LessOrEqual(t, env.fake.Stats().IAMKeyCalls["id-token"]-exchanges, int64(1),
		"refusals of JWTs already refused are remembered")
}

// A role write (a description change) while reads through its agency are
// in flight: every upstream call those reads make after it through the
// replaced role builds a client of its own, each with its own assume_role,
// instead of finishing with the credentials the role already had.
func TestAttackRoleWriteDuringReadsIsAnAssumeRolePerCallInFlight(t *testing.T) {
	env := newAgencyEnv(t)
	const n = 8
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("a0000000-0000-4000-8000-0000000001%02d", i)
		env.fake.SetTask(id, fmt.Sprintf("pp-team-a-%02d-4d3c2b1a0f9e", i))
		env.fake.SetTaskMeta(id, smsfake.TaskMeta{Name: fmt.Sprintf("web-a-%d", i), EnterpriseProjectID: "ep-a", State: "READY"})
		ids = append(ids, id)
	}
	// The role's credentials, in use before the reads start.
	_, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
	require.Equal(t, http.StatusOK, status, msg)
	before := assumeRoleCalls(env)

	var entered atomic.Int32
	released := make(chan struct{})
	env.b.fetchHook = func() {
		switch entered.Add(1) {
		case n:
			status, msg := env.write("roles/team-a", map[string]any{"description": "changed while reads are in flight"})
			if status != http.StatusNoContent {
				t.Errorf("role write: %d %s", status, msg)
			}
			close(released)
		default:
			if entered.Load() <= n {
				<-released
			}
		}
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, status, msg := env.read("roles/team-a/passphrase/" + id); status != http.StatusOK {
				t.Errorf("read of %s: %d %s", id, status, msg)
			}
		}()
	}
	wg.Wait()
	env.b.fetchHook = nil
	// One assume_role for the changed role's own credentials would do;
	// reads in flight may finish with the credentials they started with.
	require.LessOrEqual(t, assumeRoleCalls(env)-before, int64(1), "assume_role calls for %d reads in flight across one role write", n)
}
