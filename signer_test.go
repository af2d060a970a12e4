package sms

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The official SDK's signer test vectors, from the reference.
func TestSignerReproducesTheSDKVectors(t *testing.T) {
	cases := []struct {
		name, method, rawURL, body, contentType, want string
	}{
		{
			name: "GET with query", method: "GET", rawURL: "https://example.huaweicloud.com/path?limit=1",
			want: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		},
		{
			name: "POST with JSON body", method: "POST", rawURL: "https://example.huaweicloud.com/path?key=value",
			body: "{\"Name\":\"test\",\"Id\":1}\n", contentType: "application/json",
			want: "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.rawURL)
			require.NoError(t, err)
			h := http.Header{}
			h.Set("X-Sdk-Date", "20060102T150405Z")
			h["TEST_UNDERSCORE"] = []string{"TEST_VALUE"} // must not be signed
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType) // must not be signed
			}
			// The vectors sign no host header: pass none.
			got := signRequest(tc.method, u, "", h, []byte(tc.body), "AccessKey", "SecretKey")
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCanonicalRequestOfTheFirstVector(t *testing.T) {
	u, _ := url.Parse("https://example.huaweicloud.com/path?limit=1")
	h := http.Header{"X-Sdk-Date": {"20060102T150405Z"}, "TEST_UNDERSCORE": {"TEST_VALUE"}}
	names, headers := canonicalHeaders("", h)
	canonical := strings.Join([]string{"GET", canonicalURI(u.Path), canonicalQuery(u.Query()), headers, strings.Join(names, ";"), emptyBodySHA256}, "\n")
	require.Equal(t, "GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", canonical)
}

func TestCanonicalQueryVector(t *testing.T) {
	q := url.Values{
		"limit":  {"1"},
		"enable": {"true"},
		"multi":  {"3", "1", "2"},
		"path":   {"/tmp/123"},
		"test":   {"一 (&=?!#%.*)"},
	}
	require.Equal(t, "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29", canonicalQuery(q))
}

func TestCanonicalURI(t *testing.T) {
	require.Equal(t, "/", canonicalURI(""))
	require.Equal(t, "/", canonicalURI("/"))
	require.Equal(t, "/v3/tasks/a.b_c-d~/passphrase/", canonicalURI("/v3/tasks/a.b_c-d~/passphrase"))
	require.Equal(t, "/a%20b/%2A/", canonicalURI("/a b/*/"))
}

// signedRequest builds a signed SMS request the way the client does.
func signedRequest(t *testing.T, base string, s *akskSigner) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v3/tasks/"+testTask+"/passphrase", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	require.NoError(t, s.authorize(context.Background(), req))
	return req
}

func TestSignedRequestIsAcceptedByTheStandIn(t *testing.T) {
	env := newTestEnv(t)
	signer := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, projectID: "0123456789abcdef", domainID: "d-42", now: env.clock.Now}
	req := signedRequest(t, env.srv.URL, signer)

	auth := req.Header.Get("Authorization")
	require.Contains(t, auth, "SignedHeaders=accept;host;x-domain-id;x-project-id;x-sdk-date,")
	require.NotContains(t, auth, testSecretKey)

	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "accept;host;x-domain-id;x-project-id;x-sdk-date", env.fake.Stats().SignedHeaders)
}

func TestWrongSecretKeyOrTamperingIsRejectedByTheStandIn(t *testing.T) {
	env := newTestEnv(t)
	send := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	wrong := &akskSigner{accessKey: testAccessKey, secretKey: "not-the-secret-key", now: env.clock.Now}
	require.Equal(t, http.StatusUnauthorized, send(signedRequest(t, env.srv.URL, wrong)))

	good := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, projectID: "p1", now: env.clock.Now}
	tampered := signedRequest(t, env.srv.URL, good)
	tampered.Header.Set("X-Project-Id", "p2") // a signed header changed in transit
	require.Equal(t, http.StatusUnauthorized, send(tampered))

	// A date more than 15 minutes off.
	old := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: func() time.Time { return env.clock.Now().Add(-16 * time.Minute) }}
	require.Equal(t, http.StatusUnauthorized, send(signedRequest(t, env.srv.URL, old)))
	skewed := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: func() time.Time { return env.clock.Now().Add(14 * time.Minute) }}
	require.Equal(t, http.StatusOK, send(signedRequest(t, env.srv.URL, skewed)))
	require.EqualValues(t, 3, env.fake.Stats().Rejected)
}

func TestSignerUsesCurrentUTCTime(t *testing.T) {
	loc := time.FixedZone("UTC+8", 8*3600)
	at := time.Date(2026, 11, 27, 9, 30, 0, 0, loc)
	s := &akskSigner{accessKey: "ak", secretKey: "sk", now: func() time.Time { return at }}
	req, _ := http.NewRequest(http.MethodGet, "https://sms.example.com/v3/tasks/x/passphrase", nil)
	require.NoError(t, s.authorize(context.Background(), req))
	require.Equal(t, "20261127T013000Z", req.Header.Get("X-Sdk-Date"))
}

func TestTemporaryCredentialsSignTheSecurityToken(t *testing.T) {
	fake := smsfake.New(smsfake.Options{
		AccessKeys:     map[string]string{testAccessKey: testSecretKey},
		SecurityTokens: map[string]string{testAccessKey: testSecurityTok},
		Tasks:          map[string]string{testTask: testPassphrase},
	})
	srv := httptest.NewServer(fake)
	defer srv.Close()

	withToken := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, securityToken: testSecurityTok, now: time.Now}
	req := signedRequest(t, srv.URL, withToken)
	require.Contains(t, req.Header.Get("Authorization"), "x-security-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	without := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: time.Now}
	resp, err = http.DefaultClient.Do(signedRequest(t, srv.URL, without))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
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
