package sms

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/pluginidentityutil"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	testIdP      = "k8s-oidc"
	testIssuer   = "https://kubernetes.default.svc"
	testAudience = "sms-vault"
	testProject  = "proj-0123456789abcdef"
)

// idTokenEnv is a test environment whose stand-in trusts an OIDC issuer,
// with the plugin's JWT file in a temporary directory.
type idTokenEnv struct {
	*testEnv
	issuer *smsfake.Issuer
	file   string
	env    map[string]string
}

func newIDTokenEnv(t *testing.T, tune func(*smsfake.Options)) *idTokenEnv {
	t.Helper()
	iss, err := smsfake.NewIssuer("sa-key-1", "RS256")
	require.NoError(t, err)
	env := newTestEnvWith(t, func(o *smsfake.Options) {
		o.IdentityProviders = []smsfake.IdentityProvider{{ID: testIdP, Domain: testDomain, Issuer: testIssuer,
			ClientIDs: []string{testAudience}, JWKS: smsfake.JWKS(iss)}}
		if tune != nil {
			tune(o)
		}
	})
	e := &idTokenEnv{testEnv: env, issuer: iss, file: filepath.Join(t.TempDir(), "token"), env: map[string]string{}}
	// The stand-in listens on loopback: the registration names it.
	e.env[envIDTokenFile], e.env[envIDTokenHosts] = e.file, "127.0.0.1"
	env.b.getenv = func(k string) string { return e.env[k] }
	return e
}

// mint writes a new JWT for subject to the file and returns it.
func (e *idTokenEnv) mint(subject string) string {
	e.t.Helper()
	now := e.clock.Now()
	jwt, err := e.issuer.Sign(map[string]any{"iss": testIssuer, "aud": testAudience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	require.NoError(e.t, err)
	require.NoError(e.t, os.WriteFile(e.file, []byte(jwt+"\n"), 0o600))
	return jwt
}

func (e *idTokenEnv) configureIDToken(extra map[string]any) (int, string) {
	data := map[string]any{"endpoint": e.srv.URL, "iam_endpoint": e.srv.URL, "idp_id": testIdP, "project_id": testProject}
	for k, v := range extra {
		data[k] = v
	}
	return e.write("config", data)
}

// sessions are the identities the stand-in's trace shows for SMS calls.
func sessions(fake *smsfake.Server) []string {
	var out []string
	for _, c := range fake.Calls() {
		out = append(out, c.Kind+"/"+c.Name+"/"+c.Session)
	}
	return out
}

func TestIDTokenMethodReadsWithAJWTFromTheRegisteredFile(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	jwt := env.mint("system:serviceaccount:vault:vault")
	status, msg := env.configureIDToken(nil)
	require.Equal(t, http.StatusNoContent, status, msg)

	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
	require.EqualValues(t, 1, env.fake.Stats().IAMKeyCalls["id-token"])
	require.Contains(t, sessions(env.fake), "federated/fed-system_serviceaccount_vault_vault/")

	cfg, status, msg := env.read("config")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, "id_token", cfg.Data["auth_method"])
	require.Equal(t, testIdP, cfg.Data["idp_id"])
	require.Equal(t, testProject, cfg.Data["project_id"])
	require.Equal(t, env.file, cfg.Data["id_token_file"])
	assertNoSecrets(t, strings.Join(flatten(cfg.Data), " "), jwt)

	// rotate-root: nothing is stored to rotate.
	status, msg = env.write("config/rotate-root", nil)
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "id_token")

	// The kubelet rotates the file: the next exchange reads the new JWT.
	env.mint("system:serviceaccount:vault:vault-2")
	env.fake.RevokeTokens() // SMS answers 401: one new exchange
	env.fake.ClearCalls()
	env.b.cache.flush()
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.EqualValues(t, 2, env.fake.Stats().IAMKeyCalls["id-token"])
	require.Contains(t, sessions(env.fake), "federated/fed-system_serviceaccount_vault_vault-2/")
	assertNoSecrets(t, env.logs.String(), jwt)
}

func flatten(data map[string]any) []string {
	var out []string
	for k, v := range data {
		if s, ok := v.(string); ok {
			out = append(out, k+"="+s)
		}
	}
	return out
}

func TestIDTokenConfigWritesAreCheckedBeforeAnyExchange(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	garbage := "password=hunter2-and-other-private-things"

	for name, tc := range map[string]struct {
		extra map[string]any
		env   map[string]string
		file  string // written to the JWT file when set
		want  []string
	}{
		"no source":         {env: map[string]string{envIDTokenHosts: "127.0.0.1"}, want: []string{"SMS_ID_TOKEN_FILE", "identity_token_audience"}},
		"missing file":      {env: map[string]string{envIDTokenFile: "/nonexistent/token", envIDTokenHosts: "127.0.0.1"}, want: []string{"SMS_ID_TOKEN_FILE", "could not be read"}},
		"not a JWS":         {file: garbage, want: []string{"does not hold an ID token"}},
		"unsigned JWT":      {file: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln", want: []string{"signing algorithm"}},
		"two JWTs":          {file: "a.b.c\na.b.c", want: []string{"base64url"}},
		"no scope":          {extra: map[string]any{"project_id": ""}, want: []string{"exactly one scope"}},
		"two scopes":        {extra: map[string]any{"domain_name": testDomain}, want: []string{"exactly one scope"}},
		"bad idp_id":        {extra: map[string]any{"idp_id": "a/b"}, want: []string{"idp_id must be"}},
		"and a token":       {extra: map[string]any{"token": testToken}, want: []string{"more than one auth method"}},
		"foreign endpoint":  {extra: map[string]any{"endpoint": "https://sms.example.com"}, want: []string{"endpoint", envIDTokenHosts}},
		"foreign iam":       {extra: map[string]any{"iam_endpoint": "https://iam.attacker.test"}, want: []string{"iam_endpoint", envIDTokenHosts}},
		"lookalike domain":  {extra: map[string]any{"endpoint": "https://sms.evilmyhuaweicloud.com"}, want: []string{"endpoint"}},
		"ttl out of bounds": {extra: map[string]any{"identity_token_ttl": 30}, want: []string{"identity_token_ttl"}},
	} {
		t.Run(name, func(t *testing.T) {
			env.env = map[string]string{envIDTokenFile: env.file, envIDTokenHosts: "127.0.0.1"}
			if tc.env != nil {
				env.env = tc.env
			}
			if tc.file != "" {
				require.NoError(t, os.WriteFile(env.file, []byte(tc.file), 0o600))
				defer env.mint("sub")
			}
			before := env.fake.Stats().IAMKeyCalls["id-token"]
			status, msg := env.configureIDToken(tc.extra)
			require.Equal(t, http.StatusBadRequest, status, msg)
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
			require.NotContains(t, msg, "hunter2")
			require.Equal(t, before, env.fake.Stats().IAMKeyCalls["id-token"], "no exchange for a refused write")
			_, status, _ = env.read("config")
			require.Equal(t, http.StatusNotFound, status, "a refused write stores nothing")
		})
	}

	// The registration may name other hosts the JWT goes to.
	env.env = map[string]string{envIDTokenFile: env.file, envIDTokenHosts: "127.0.0.1, *.example.com"}
	status, msg := env.configureIDToken(map[string]any{"endpoint": "https://sms.example.com"})
	require.Equal(t, http.StatusNoContent, status, msg)
	require.NotContains(t, env.logs.String(), "hunter2")

	// Without a list: Huawei Cloud's own IAM and SMS hosts, and no private CA.
	env.env = map[string]string{envIDTokenFile: env.file}
	status, msg = env.configureIDToken(map[string]any{"endpoint": "https://sms.ap-southeast-3.myhuaweicloud.com",
		"iam_endpoint": "https://iam.myhuaweicloud.com"})
	require.Equal(t, http.StatusNoContent, status, msg)
	for _, host := range []string{"https://iam.eu-west-101.myhuaweicloud.eu", "https://iam.ap-southeast-1.myhuaweicloud.com"} {
		status, msg = env.write("config", map[string]any{"iam_endpoint": host})
		require.Equal(t, http.StatusNoContent, status, msg)
	}
	for _, host := range []string{"http://127.0.0.1:8200", "https://sms.example.com", "https://iam.myhuaweicloud.com.evil.test"} {
		status, msg = env.write("config", map[string]any{"iam_endpoint": host})
		require.Equal(t, http.StatusBadRequest, status, host)
		require.Contains(t, msg, "iam_endpoint: with the id_token method")
	}
}

// identitySystem is a system view that issues plugin identity tokens, as
// Vault Enterprise does, or refuses as Community Edition does.
type identitySystem struct {
	logical.StaticSystemView
	issue func(req *pluginutil.IdentityTokenRequest) (string, error)
	asked []pluginutil.IdentityTokenRequest
}

func (s *identitySystem) GenerateIdentityToken(_ context.Context, req *pluginutil.IdentityTokenRequest) (*pluginutil.IdentityTokenResponse, error) {
	s.asked = append(s.asked, *req)
	tok, err := s.issue(req)
	if err != nil {
		return nil, err
	}
	return &pluginutil.IdentityTokenResponse{Token: pluginutil.IdentityToken(tok), TTL: req.TTL}, nil
}

func withSystem(t *testing.T, env *testEnv, sys logical.SystemView) {
	t.Helper()
	b := newBackend(env.b.logger, env.clock.Now)
	conf := logical.TestBackendConfig()
	conf.Logger = env.b.logger
	conf.System = sys
	require.NoError(t, b.Setup(context.Background(), conf))
	b.getenv = env.b.getenv
	env.b.Clean(context.Background())
	env.b = b
	t.Cleanup(func() { b.Clean(context.Background()) })
}

func TestPluginIdentityTokensOnCommunityEditionAre400PointingToTheFile(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	// Over gRPC the SDK's sentinel arrives as text only.
	sys := &identitySystem{issue: func(*pluginutil.IdentityTokenRequest) (string, error) {
		return "", errors.New(pluginidentityutil.ErrPluginWorkloadIdentityUnsupported.Error())
	}}
	withSystem(t, env.testEnv, sys)
	env.env = map[string]string{envIDTokenHosts: "127.0.0.1"}
	status, msg := env.configureIDToken(map[string]any{"identity_token_audience": testAudience})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.Contains(t, msg, "Vault Enterprise")
	require.Contains(t, msg, "SMS_ID_TOKEN_FILE")
	require.True(t, strings.Index(msg, "Vault Enterprise") < strings.Index(msg, "SMS_ID_TOKEN_FILE"))
	// The same on a config of another method: said first.
	env.configure(nil)
	status, msg = env.write("config", map[string]any{"identity_token_audience": testAudience})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.True(t, strings.HasPrefix(msg, "invalid configuration: identity_token_audience needs Vault Enterprise"), msg)
}

func TestPluginIdentityTokensAreExchangedOnEnterprise(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	sys := &identitySystem{}
	sys.issue = func(req *pluginutil.IdentityTokenRequest) (string, error) {
		now := env.clock.Now()
		return env.issuer.Sign(map[string]any{"iss": testIssuer, "aud": req.Audience, "sub": "plugin-identity:sms",
			"iat": now.Unix(), "exp": now.Add(req.TTL).Unix()})
	}
	withSystem(t, env.testEnv, sys)
	env.env = map[string]string{envIDTokenHosts: "127.0.0.1"} // no file: the plugin identity token is used
	status, msg := env.configureIDToken(map[string]any{"identity_token_audience": testAudience, "identity_token_ttl": "30m"})
	require.Equal(t, http.StatusNoContent, status, msg)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Contains(t, sessions(env.fake), "federated/fed-plugin-identity_sms/")
	last := sys.asked[len(sys.asked)-1]
	require.Equal(t, testAudience, last.Audience)
	require.Equal(t, 30*time.Minute, last.TTL)

	cfg, _, _ := env.read("config")
	require.Equal(t, testAudience, cfg.Data["identity_token_audience"])
	require.EqualValues(t, 1800, cfg.Data["identity_token_ttl"])
}

func TestIDTokenRefusalsAre502AndRemembered(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	status, msg := env.configureIDToken(map[string]any{"cache_ttl": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	env.fake.DeleteIdentityProvider(testIdP)

	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "HTTP 404")
	calls := env.fake.Stats().IAMKeyCalls["id-token"]
	for i := 0; i < 5; i++ {
		_, status, _ = env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status)
	}
	require.Equal(t, calls, env.fake.Stats().IAMKeyCalls["id-token"], "a refusal is remembered: no storm of exchanges")
	require.Zero(t, env.fake.Stats().Requests, "no SMS call without a token")

	// A file that stops being a JWT: a 502 that does not quote it.
	require.NoError(t, os.WriteFile(env.file, []byte("not-a-jwt secret-material-9f8e7d"), 0o600))
	status, msg = env.configureIDToken(map[string]any{"cache_ttl": 0})
	require.Equal(t, http.StatusBadRequest, status, msg)
	require.NotContains(t, msg, "secret-material")
}

func TestIDTokenFileBrokenAfterTheConfigIsA502ThatDoesNotQuoteIt(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	status, msg := env.configureIDToken(map[string]any{"cache_ttl": 0})
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	// The file is replaced by something else (a mount gone wrong), and IAM
	// revokes the token held: the next exchange reads the file and stops.
	require.NoError(t, os.WriteFile(env.file, []byte("BEGIN PRIVATE KEY secret-material-9f8e7d6c"), 0o600))
	env.fake.RevokeTokens()
	exchanges := env.fake.Stats().IAMKeyCalls["id-token"]
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "SMS_ID_TOKEN_FILE")
	require.NotContains(t, msg, "secret-material")
	require.NotContains(t, env.logs.String(), "secret-material")
	require.Equal(t, exchanges, env.fake.Stats().IAMKeyCalls["id-token"], "nothing is sent to IAM")

	// Mended by whoever runs Vault: the next read works, no config write needed.
	env.mint("sub")
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
}
