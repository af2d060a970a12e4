//go:build integration

package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Issue 18 against a hostile IAM, through a real Vault: IAM quoting back
// the JWT it was sent (whole, or with zero-width spaces between its
// characters) in its refusal of the exchange, and quoting the caller's IAM
// token in its refusal of assume_role (whole, or spread with hidden
// characters); no read's error, no CLI output and no log shows any of them.
func TestHostileIAMQuotingTheJWTAndTokensThroughVault(t *testing.T) {
	key := newRSAKey(t, "sa-key-hostile")
	jwt := key.idToken(t)
	tokenFile := newProjectedToken(t, jwt)
	fake, iam := leastPrivilegeFake(t, fedAccount, smsfake.Options{
		IdentityProviders: []smsfake.IdentityProvider{fedIdP(&smsfake.Permissions{AgentOperator: true}, key)},
	})
	defer neverLogIssued(fake)
	v := newVault(t, "hostile-iam")
	v.registerForIDToken(version1, tokenFile)
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount, "cache_ttl=0")
	agencyRoles(t, v)
	tokenA := teamToken(t, v, "team-a")
	readA := func() (int, string) { return v.call(tokenA, "GET", "sms/roles/team-a/passphrase/"+roleTaskA1) }
	// sig is the part of the JWT no other JWT shares; spread is text with
	// a zero-width space between each two characters.
	sig := jwt[strings.LastIndex(jwt, ".")+1:]
	spread := func(s string) string { return strings.Join(strings.Split(s, ""), "\u200b") }
	requireClean := func(what, text string) {
		t.Helper()
		neverLogIssued(fake)
		assertNoSecrets(t, what, text)
		require.NotContains(t, strings.ReplaceAll(text, "\u200b", ""), sig[:16], "%s quotes the JWT", what)
	}

	for name, msg := range map[string]func(string) string{
		"whole":  func(jwt string) string { return "The ID token " + jwt + " is refused." },
		"spread": func(jwt string) string { return "The ID token " + spread(jwt) + " is refused." },
	} {
		iam.setHostile(func(jwt string) (int, string) { return http.StatusUnauthorized, msg(jwt) })
		v.root("write", "sms/config", "cache_ttl=0") // starts afresh: no token, no remembered refusal
		code, body := readA()
		require.Equal(t, http.StatusBadGateway, code, "%s: %s", name, shown(body))
		require.Contains(t, body, "IAM refused the ID token", name)
		require.Contains(t, body, `\u003credacted\u003e`, "%s: IAM's quote of the JWT is shown redacted", name)
		requireClean("the error of an exchange refused quoting the JWT "+name, body)
		_, errOut, err := v.cli(tokenA, "read", "sms/roles/team-a/passphrase/"+roleTaskA1)
		require.Error(t, err)
		requireClean("the CLI's error ("+name+")", errOut)
	}
	iam.setHostile(nil)
	v.root("write", "sms/config", "cache_ttl=0")
	code, body := readA()
	require.Equal(t, http.StatusOK, code, shown(body))

	for _, f := range []smsfake.Fault{
		{Mode: smsfake.FaultEchoCredentials, Target: "iam", Call: "security-token", Status: http.StatusForbidden},
		{Mode: smsfake.FaultHiddenCharacters, Target: "iam", Call: "security-token", Status: http.StatusForbidden},
	} {
		fake.ClearFaults()
		require.NoError(t, fake.AddFault(f))
		fake.ExpireTemporaryKeys()
		v.root("write", "sms/config", "cache_ttl=0")
		code, body := readA()
		require.Equal(t, http.StatusBadGateway, code, "%s: %s", f.Mode, shown(body))
		require.Contains(t, body, "assume agency", f.Mode)
		require.Contains(t, body, `\u003credacted\u003e`, "%s: IAM's quote of the token is shown redacted", f.Mode)
		requireClean("the error of an assume_role refused by "+f.Mode, body)
	}
	fake.ClearFaults()
	v.root("write", "sms/config", "cache_ttl=0")
	code, body = readA()
	require.Equal(t, http.StatusOK, code, shown(body))
}
