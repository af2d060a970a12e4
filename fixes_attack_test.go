package sms

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/stretchr/testify/require"
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
