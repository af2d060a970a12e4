//go:build integration

package integration

import (
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

var certKeyFields = []string{"cert", "private_key", "target_mgmt_cert", "target_mgmt_private_key", "target_data_cert", "target_data_private_key"}

// keyBodies are the base64 lines of a set's private keys: what must appear
// in no log and no audit entry.
func keyBodies(set map[string]string) []string {
	var out []string
	for name, v := range set {
		if !strings.HasSuffix(name, "private_key") {
			continue
		}
		block, _ := pem.Decode([]byte(v))
		lines := strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: "K", Bytes: block.Bytes})), "\n")
		out = append(out, lines[1:len(lines)-2]...) // between BEGIN and END
	}
	return out
}

func writePolicy(t *testing.T, v *vaultServer, name, hcl string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".hcl")
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o600))
	v.root("policy", "write", name, path)
	token := strings.TrimSpace(v.root("token", "create", "-policy="+name, "-field=token"))
	neverLog(token)
	return token
}

func TestCertKeyDirectRoleAndPolicies(t *testing.T) {
	v := newVault(t, "certkey")
	fake := teamsFake(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)
	setUpTeams(t, v, fake)
	want := fake.CertKeyOf(roleTaskA1)
	neverLog(keyBodies(want)...)

	// Direct, through the API and the CLI (with the CA).
	s, err := v.api(v.rootToken).Logical().Read("sms/certkey/" + roleTaskA1)
	require.NoError(t, err)
	require.Empty(t, s.LeaseID)
	for _, f := range certKeyFields {
		require.Equal(t, want[f], s.Data[f], f)
	}
	require.NotContains(t, s.Data, "ca")
	require.NotEmpty(t, s.Data["cert_not_after"])
	ca := v.root("read", "-field=ca", "sms/certkey/"+roleTaskA1, "enable_ca_cert=true")
	require.Equal(t, strings.TrimSpace(want["ca"]), strings.TrimSpace(ca))

	// A team allowed passphrases only is refused the keys; a team allowed
	// both gets them through its role, in scope only.
	passOnly := writePolicy(t, v, "team-a-passphrases", `path "sms/roles/team-a/passphrase/*" { capabilities = ["read"] }`)
	both := writePolicy(t, v, "team-a-channel", `
path "sms/roles/team-a/passphrase/*" { capabilities = ["read"] }
path "sms/roles/team-a/certkey/*" { capabilities = ["read"] }
`)
	require.Equal(t, ppA1, strings.TrimSpace(v.cliOK(passOnly, "read", "-field=passphrase", "sms/roles/team-a/passphrase/"+roleTaskA1)))
	code, body := v.call(passOnly, "GET", "sms/roles/team-a/certkey/"+roleTaskA1)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "permission denied", "Vault's own ACL refuses it")
	key := v.cliOK(both, "read", "-field=private_key", "sms/roles/team-a/certkey/"+roleTaskA1)
	require.Equal(t, strings.TrimSpace(want["private_key"]), strings.TrimSpace(key))
	code, body = v.call(both, "GET", "sms/roles/team-a/certkey/"+roleTaskB1)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "not in the scope of role")
	require.Zero(t, fake.Stats().CertKeyByTask[roleTaskB1])

	// The audit log has every read, and no PEM content in clear.
	raw, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	audit := string(raw)
	require.True(t, strings.Contains(audit, `"path":"sms/roles/team-a/certkey/`+roleTaskA1+`"`), "the role read is audited")
	require.False(t, strings.Contains(audit, "BEGIN"), "no PEM in clear in the audit log")
	for _, line := range keyBodies(want) {
		require.False(t, strings.Contains(audit, line), "no key material in the audit log")
	}
	// Process logs are checked for the keys when the test ends (neverLog).
}

func TestAgentWritesCertAndKeyFilesAndRerendersAfterRotation(t *testing.T) {
	v := newVault(t, "certkey-agent")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	token := writePolicy(t, v, "team-a-agent", `path "sms/roles/team-a/certkey/*" { capabilities = ["read"] }`)
	neverLog(keyBodies(fake.CertKeyOf(roleTaskA1))...)

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	secret := `{{ with secret \"sms/roles/team-a/certkey/` + roleTaskA1 + `\" }}`
	startAgent(t, v, token, dir, `
template {
  contents    = "`+secret+`{{ .Data.cert }}{{ end }}"
  destination = "`+certFile+`"
  perms       = "0600"
}
template {
  contents    = "`+secret+`{{ .Data.private_key }}{{ end }}"
  destination = "`+keyFile+`"
  perms       = "0600"
}
`)
	rendered := func(path string) string { b, _ := os.ReadFile(path); return strings.TrimSpace(string(b)) }
	matches := func(set map[string]string) bool {
		return rendered(certFile) == strings.TrimSpace(set["cert"]) && rendered(keyFile) == strings.TrimSpace(set["private_key"])
	}
	waitFor(t, 60*time.Second, "the agent to write the certificate and key", func() bool { return matches(fake.CertKeyOf(roleTaskA1)) })
	for _, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}

	// SMS sets the channel up anew; an operator evicts the cached answer.
	old := fake.CertKeyOf(roleTaskA1)
	fake.RotateCertKey(roleTaskA1)
	rotated := fake.CertKeyOf(roleTaskA1)
	neverLog(keyBodies(rotated)...)
	require.NotEqual(t, old["private_key"], rotated["private_key"])
	v.root("delete", "sms/certkey/"+roleTaskA1)
	waitFor(t, 60*time.Second, "the agent to write the new certificate and key", func() bool { return matches(rotated) })
}

// pluginLines returns the lines of a Vault log written by the plugin.
func pluginLines(t *testing.T, v *vaultServer) []string {
	t.Helper()
	raw, err := os.ReadFile(v.logPath)
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, pluginName) {
			out = append(out, line)
		}
	}
	return out
}

// base64Runs returns the stretches of base64 as long as a third of a PEM
// line that are not hex (request ids, hashes): DER, if the engine echoed it.
func base64Runs(text string) []string {
	var out []string
	for _, run := range regexp.MustCompile(`[A-Za-z0-9+/]{24,}`).FindAllString(text, -1) {
		if strings.Trim(run, "0123456789abcdefABCDEF") != "" {
			out = append(out, run)
		}
	}
	return out
}

// Issue 17, defect 6, through the vault CLI: a private key's bytes under a
// CERTIFICATE label, in cert, after target_mgmt_cert's certificate or in
// ca, are a 502 naming the field on the direct and the role path; neither
// the CLI's output nor Vault's log holds PEM or base64.
func TestCertKeyKeyInACertificateBlockIsA502(t *testing.T) {
	v := newVault(t, "certkey-key-in-cert")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	team := writePolicy(t, v, "team-a-certkey", `path "sms/roles/team-a/certkey/*" { capabilities = ["read"] }`)
	for mode, field := range map[string]string{smsfake.FaultKeyInCertBlock: "cert", smsfake.FaultKeyAfterMgmtCert: "target_mgmt_cert",
		smsfake.FaultKeyInCABlock: "ca"} {
		require.NoError(t, fake.AddFault(smsfake.Fault{Mode: mode, Call: "certkey"}))
		for token, path := range map[string]string{v.rootToken: "sms/certkey/" + roleTaskA1, team: "sms/roles/team-a/certkey/" + roleTaskA1} {
			out, errOut, err := v.cli(token, "read", path, "enable_ca_cert=true")
			require.Error(t, err, "%s %s: %s", mode, path, out)
			require.Contains(t, errOut, "Code: 502", mode)
			require.Contains(t, errOut, "answered with a "+field+" that is not", mode)
			require.NotContains(t, out+errOut, "-----", mode)
			// The CLI repeats the request's URL, whose path looks like base64.
			shown := regexp.MustCompile(`(?m)^URL: .*$`).ReplaceAllString(out+errOut, "")
			require.Empty(t, base64Runs(shown), "%s: base64 in the CLI's output", mode)
		}
		fake.ClearFaults()
	}
	logged := 0
	for _, line := range pluginLines(t, v) {
		if !strings.Contains(line, "certkey") {
			continue // the plugin's start-up lines name temporary paths
		}
		logged++
		require.NotContains(t, line, "-----")
		require.Empty(t, base64Runs(line), "base64 in the plugin's log")
	}
	require.NotZero(t, logged, "the refusals are logged")
	// The same reads serve the task's answer, with its cert_not_after, once
	// SMS answers well.
	data, err := v.readJSON(team, "sms/roles/team-a/certkey/"+roleTaskA1)
	require.NoError(t, err)
	require.NotEmpty(t, data["cert_not_after"])
}
