//go:build integration

package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	fedIdpID   = "idp-k8s-prod-cluster"
	fedAccount = "itest-fed-account"
)

// fedIdP is the identity provider IAM trusts for the cluster's
// service-account tokens.
func fedIdP(perms *smsfake.Permissions, keys ...*oidcKey) smsfake.IdentityProvider {
	return smsfake.IdentityProvider{ID: fedIdpID, Domain: fedAccount, Issuer: oidcIssuer,
		ClientIDs: []string{oidcAudience}, JWKS: jwksDocument(keys...), Permissions: perms}
}

// Issue 18, part 1, through a real Vault: the plugin registered with
// SMS_ID_TOKEN_FILE naming a kubelet-style projected token; the engine
// exchanges the file's JWT for an IAM token, reads the file afresh for each
// exchange (a rotated file is used at the next one, also after the issuer
// retires the old key), refuses a file that is not a JWT without echoing it
// or sending it to IAM, and never lets the JWT reach a log, the audit log
// or the CLI.
func TestIDTokenFromAProjectedFileThroughVault(t *testing.T) {
	key1, key2 := newRSAKey(t, "sa-key-2026-11"), newECKey(t, "sa-key-2026-12")
	jwt1 := key1.idToken(t)
	tokenFile := newProjectedToken(t, jwt1)
	fake, sent := startFederatedFake(t, smsfake.Options{
		IdentityProviders: []smsfake.IdentityProvider{fedIdP(nil, key1, key2)},
		Tasks:             map[string]string{"demo-task-0001": passphrase},
	})
	defer neverLogIssued(fake)

	v := newVault(t, "idtoken")
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)
	v.registerForIDToken(version1, tokenFile)
	v.root("secrets", "enable", "-path=sms", pluginName)
	out := v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount, "cache_ttl=0")
	assertNoSecrets(t, "the config write's output", out)

	cfg, err := v.readJSON(v.rootToken, "sms/config")
	require.NoError(t, err)
	require.Equal(t, "id_token", cfg["auth_method"])
	require.Equal(t, fedIdpID, cfg["idp_id"])
	require.Equal(t, fedAccount, cfg["domain_name"])
	require.Equal(t, tokenFile.path, cfg["id_token_file"], "the path, not the content")
	out = v.root("read", "-format=json", "sms/config")
	assertNoSecrets(t, "a config read", out)

	read := func(what string) {
		t.Helper()
		got := strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001"))
		require.Equal(t, passphrase, got, what)
	}
	read("the first read")
	require.Equal(t, []string{jwt1}, sent.all(), "one exchange, with the file's JWT")
	last := fake.Calls()[len(fake.Calls())-1]
	require.Equal(t, smsfake.Call{Time: last.Time, Call: "passphrase", TaskID: "demo-task-0001",
		Kind: "federated", Domain: fedAccount, Name: fedUserName, Status: 200}, last,
		"SMS sees the federated user the IdP mapped the service account to")

	// The kubelet rotates the token (signed with the issuer's new key);
	// the IAM token in hand stays in use until something ends it.
	jwt2 := key2.idToken(t)
	tokenFile.write(jwt2)
	read("a read after the file rotated")
	require.Equal(t, 1, sent.count(), "a valid IAM token is reused, not exchanged on every read")

	// IAM revokes the token: SMS answers 401, the engine exchanges the
	// file's current JWT, once, and the read succeeds.
	fake.RevokeTokens()
	read("the read that met the revoked IAM token")
	require.Equal(t, []string{jwt1, jwt2}, sent.all(), "the second exchange sent the rotated JWT")

	// The issuer retires the old key: only the new JWT is good now.
	require.NoError(t, fake.SetIdentityProvider(fedIdP(nil, key2)))
	fake.RevokeTokens()
	read("a read after the old key was retired")
	require.Equal(t, jwt2, sent.last())

	// Whatever else the file holds is refused before IAM, and not echoed.
	garbage := "not-a-jwt-" + strings.Repeat("Zq7", 12)
	neverLog(garbage)
	for name, content := range map[string]string{
		"garbage":         garbage,
		"two JWTs":        jwt2 + "\n" + jwt2,
		"a JWT in a JSON": `{"token":"` + jwt2 + `","note":"` + garbage + `"}`,
	} {
		tokenFile.write(content)
		fake.RevokeTokens()
		before := sent.count()
		code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		require.Equal(t, http.StatusBadGateway, code, "%s: %s", name, shown(body))
		require.NotContains(t, body, passphrase, name)
		require.Contains(t, body, "SMS_ID_TOKEN_FILE", "%s: the error names the file's variable", name)
		require.Contains(t, body, "IAM was not asked", name)
		assertNoSecrets(t, "the error of a read with "+name+" in the file", body)
		_, errOut, err := v.cli(v.rootToken, "read", "sms/passphrase/demo-task-0001")
		require.Error(t, err, name)
		assertNoSecrets(t, "the CLI's error with "+name+" in the file", errOut)
		require.Equal(t, before, sent.count(), "%s reached IAM", name)
		// A config write checks the file too.
		_, errOut, err = v.cli(v.rootToken, "write", "sms/config", "cache_ttl=0")
		require.Error(t, err, name)
		require.Contains(t, errOut, "Code: 400", name)
		require.Contains(t, errOut, "SMS_ID_TOKEN_FILE", name)
		assertNoSecrets(t, "a config write with "+name+" in the file", errOut)
	}

	// A good token again: reads resume with it.
	jwt3 := key2.idToken(t)
	tokenFile.write(jwt3)
	v.root("write", "sms/config", "cache_ttl=0")
	read("a read after the file was mended")
	require.Equal(t, jwt3, sent.last())

	// IAM refuses the token (the IdP no longer holds its key): a 502
	// naming IAM's status, remembered, so that reads do not storm IAM.
	require.NoError(t, fake.SetIdentityProvider(fedIdP(nil, key1)))
	fake.RevokeTokens()
	before := sent.count()
	code, body := v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
	require.Equal(t, http.StatusBadGateway, code, shown(body))
	require.Contains(t, body, "IAM refused the ID token")
	require.Contains(t, body, "HTTP 401")
	assertNoSecrets(t, "the error of a refused ID token", body)
	for i := 0; i < 20; i++ {
		code, body = v.call(v.rootToken, "GET", "sms/passphrase/demo-task-0001")
		require.Equal(t, http.StatusBadGateway, code, shown(body))
	}
	require.Equal(t, before+1, sent.count(), "a refused ID token is not sent again at every read")
	require.NoError(t, fake.SetIdentityProvider(fedIdP(nil, key2)))
	v.root("write", "sms/config", "cache_ttl=0")
	read("a read after the IdP was mended and the config written")

	// The registration's environment is Vault's to keep: after a restart
	// the engine reads the same file.
	v.stop()
	v.start()
	v.unseal(v.unsealKey)
	jwt4 := key2.idToken(t)
	tokenFile.write(jwt4)
	read("a read after Vault restarted")
	require.Equal(t, jwt4, sent.last())

	// Nothing to rotate; Vault Enterprise's plugin identity tokens are
	// refused on Community Edition, pointing at the file.
	_, errOut, err := v.cli(v.rootToken, "write", "-f", "sms/config/rotate-root")
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	_, errOut, err = v.cli(v.rootToken, "write", "sms/config", "identity_token_audience=x")
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "Enterprise")
	require.Contains(t, errOut, "SMS_ID_TOKEN_FILE")

	// The id_token method is exclusive with the other three.
	_, errOut, err = v.cli(v.rootToken, "write", "sms/config", "token="+smsToken)
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")

	// The same plugin registered without the file's variable: no source, 400.
	v.registerWithEnv(version2, "SMS_ID_TOKEN_HOSTS=127.0.0.1")
	v.root("secrets", "enable", "-path=sms-noenv", "-plugin-version="+version2, pluginName)
	_, errOut, err = v.cli(v.rootToken, "write", "sms-noenv/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount)
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "SMS_ID_TOKEN_FILE")

	raw, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	assertNoSecrets(t, "the audit log", string(raw))
}

// Issue 18's threat model, through a real Vault: a holder of a grant to
// update sms/config, on the id_token method, where there is no secret to
// supply with a move, can neither name the file the JWT is read from nor
// send the JWT, or the IAM token it buys, to a host of the writer's choice:
// only loopback and the domains the plugin's registration allows
// (SMS_ID_TOKEN_HOSTS, Huawei Cloud's by default) may receive them.
func TestConfigWriterCannotRedirectTheIDToken(t *testing.T) {
	key := newRSAKey(t, "sa-key-writer")
	tokenFile := newProjectedToken(t, key.idToken(t))
	fake, sent := startFederatedFake(t, smsfake.Options{
		IdentityProviders: []smsfake.IdentityProvider{fedIdP(nil, key)},
		Tasks:             map[string]string{"demo-task-0001": passphrase},
	})
	defer neverLogIssued(fake)

	v := newVault(t, "idtoken-writer")
	v.registerWithEnv(version1, "SMS_ID_TOKEN_FILE="+tokenFile.path, "SMS_ID_TOKEN_HOSTS=127.0.0.1,sms.ap-southeast-3.myhuaweicloud.com")
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount, "cache_ttl=0")
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	writer := writePolicy(t, v, "config-writer", `path "sms/config" { capabilities = ["create", "read", "update"] }`)

	// Naming another file: refused or ignored, never read.
	other := filepath.Join(t.TempDir(), "other-token")
	otherJWT := key.idToken(t)
	require.NoError(t, os.WriteFile(other, []byte(otherJWT), 0o600))
	_, _, _ = v.cli(writer, "write", "sms/config", "id_token_file="+other)
	cfg, err := v.readJSON(writer, "sms/config")
	require.NoError(t, err)
	require.Equal(t, tokenFile.path, cfg["id_token_file"])
	fake.RevokeTokens()
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	require.NotContains(t, sent.all(), otherJWT, "the engine read a file a config writer named")

	// Moving IAM, or SMS, to the writer's host, or to a host of Huawei
	// Cloud's domain that is not listed (a bucket's, say): a 400 naming the
	// field and SMS_ID_TOKEN_HOSTS, the config left as it was.
	for _, move := range []struct{ field, url string }{
		{"iam_endpoint", "https://iam.collector.example.com"},
		{"endpoint", "https://sms.collector.example.com"},
		{"endpoint", "https://collector.obs.ap-southeast-3.myhuaweicloud.com"},
	} {
		field, url := move.field, move.url
		_, errOut, err := v.cli(writer, "write", "sms/config", field+"="+url)
		require.Error(t, err, field)
		require.Contains(t, errOut, "Code: 400", field)
		require.Contains(t, errOut, field)
		require.Contains(t, errOut, "SMS_ID_TOKEN_HOSTS", field)
		cfg, err := v.readJSON(writer, "sms/config")
		require.NoError(t, err)
		require.Equal(t, fake.URL, cfg[field], "%s: the stored config changed", field)
	}
	_, errOut, err := v.cli(writer, "write", "sms/config", "region=ap-southeast-3", "endpoint=")
	require.NoError(t, err, "a listed host is allowed: %s", errOut)
	cfg, err = v.readJSON(writer, "sms/config")
	require.NoError(t, err)
	require.Equal(t, "ap-southeast-3", cfg["region"])

	// Registered without SMS_ID_TOKEN_HOSTS: Huawei Cloud's own IAM and SMS
	// hosts only, not even loopback.
	v.registerWithEnv(version2, "SMS_ID_TOKEN_FILE="+tokenFile.path)
	v.root("secrets", "enable", "-path=sms-default", "-plugin-version="+version2, pluginName)
	_, errOut, err = v.cli(v.rootToken, "write", "sms-default/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount)
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "SMS_ID_TOKEN_HOSTS")
	v.root("write", "sms-default/config", "region=ap-southeast-3", "iam_endpoint=https://iam.ap-southeast-3.myhuaweicloud.com",
		"idp_id="+fedIdpID, "domain_name="+fedAccount)
}
