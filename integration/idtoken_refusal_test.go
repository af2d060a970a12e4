//go:build integration

package integration

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// IAM refuses the JWT in the file (here: signed with a key the IdP does not
// hold; in life: an expired token after the kubelet could not rotate it);
// the file is then rotated to a good token. The next read should exchange
// the new token (it is not the one IAM refused), not wait out the backoff.
func TestARotatedTokenFileEndsARememberedRefusal(t *testing.T) {
	good, unknown := newRSAKey(t, "k-good"), newRSAKey(t, "k-unknown")
	tokenFile := newProjectedToken(t, good.idToken(t))
	fake, sent := startFederatedFake(t, smsfake.Options{
		IdentityProviders: []smsfake.IdentityProvider{fedIdP(nil, good)},
		Tasks:             map[string]string{"demo-task-0001": passphrase},
	})
	defer neverLogIssued(fake)
	v := newVault(t, "refusal-then-rotation")
	v.registerWithEnv(version1, "SMS_ID_TOKEN_FILE="+tokenFile.path, "SMS_ID_TOKEN_HOSTS=127.0.0.1")
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount, "cache_ttl=0")

	tokenFile.write(unknown.idToken(t))
	fake.RevokeTokens()
	code, _ := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	require.Equal(t, http.StatusBadGateway, code)

	fresh := good.idToken(t)
	tokenFile.write(fresh)
	code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, shown(body))
	require.Equal(t, fresh, sent.last())
}
