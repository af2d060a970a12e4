//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	itAccessKey = "AKITEST0001QWERTY"
	itSecretKey = "itest-sk-5a4b3c2d1e0f9a8b7c6d"
	itUser      = "itest-user"
	itPassword  = "itest-pw-0a9b8c7d6e5f4a3b"
	itDomain    = "itest-domain"
)

func init() { neverLog(itSecretKey, itPassword) }

// One read per auth method through the vault CLI.
func TestEveryAuthMethodThroughTheCLI(t *testing.T) {
	v := newVault(t, "auth")
	fake := startFake(t, smsfake.Options{
		Tokens:     []string{smsToken},
		AccessKeys: map[string]string{itAccessKey: itSecretKey},
		Users:      []smsfake.User{{Domain: itDomain, Name: itUser, Password: itPassword}},
		Tasks:      map[string]string{"demo-task-0001": passphrase},
	})

	v.root("secrets", "enable", "-path=sms-token", pluginName)
	v.root("write", "sms-token/config", "endpoint="+fake.URL, "token="+smsToken)
	v.root("secrets", "enable", "-path=sms-aksk", pluginName)
	v.root("write", "sms-aksk/config", "endpoint="+fake.URL, "access_key="+itAccessKey, "secret_key="+itSecretKey, "project_id=0123456789abcdef")
	v.root("secrets", "enable", "-path=sms-iam", pluginName)
	v.root("write", "sms-iam/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"username="+itUser, "password="+itPassword, "domain_name="+itDomain)

	for mount, method := range map[string]string{"sms-token": "token", "sms-aksk": "access_key", "sms-iam": "password"} {
		got := strings.TrimSpace(v.root("read", "-field=passphrase", mount+"/passphrase/demo-task-0001"))
		require.Equal(t, passphrase, got, mount)

		out := v.root("read", "-format=json", mount+"/config")
		require.Contains(t, out, `"auth_method": "`+method+`"`, mount)
		for _, s := range []string{smsToken, itSecretKey, itPassword} {
			require.NotContains(t, out, s, "a config read of %s returned a secret", mount)
		}
	}
	st := fake.Stats()
	require.EqualValues(t, 1, st.ByAuth["token"])
	require.EqualValues(t, 1, st.ByAuth["aksk"])
	require.EqualValues(t, 1, st.ByAuth["iam"])
	require.EqualValues(t, 1, st.IAMTokenRequests)
	require.Contains(t, st.SignedHeaders, "x-project-id")

	// A half-filled method is a 400 naming the fields, through the CLI too.
	_, errOut, err := v.cli(v.rootToken, "write", "sms-aksk/config", "secret_key=", "username="+itUser)
	require.Error(t, err)
	require.Contains(t, errOut, "Code: 400")
	require.Contains(t, errOut, "username")
	require.NotContains(t, errOut, itSecretKey)
}
