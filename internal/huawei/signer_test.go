package huawei

import (
	"context"
	"io"
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

const (
	testAccessKey   = "AKTEST4W7Q2N8R5L1M6K"
	testSecretKey   = "sk-9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
	testSecurityTok = "sectok-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
	testTask        = "0f3c2a9e-1b4d-4c8a-9e7f-6a5b4c3d2e10"
	testPassphrase  = "pp-7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
)

// standIn starts the SMS stand-in accepting testAccessKey.
func standIn(t *testing.T, now func() time.Time) (*smsfake.Server, *httptest.Server) {
	t.Helper()
	fake := smsfake.New(smsfake.Options{AccessKeys: map[string]string{testAccessKey: testSecretKey},
		Tasks: map[string]string{testTask: testPassphrase}, Now: now})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv
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
	now := time.Now()
	fake, srv := standIn(t, func() time.Time { return now })
	signer := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, projectID: "0123456789abcdef", domainID: "d-42", now: func() time.Time { return now }}
	req := signedRequest(t, srv.URL, signer)

	auth := req.Header.Get("Authorization")
	require.Contains(t, auth, "SignedHeaders=accept;host;x-domain-id;x-project-id;x-sdk-date,")
	require.NotContains(t, auth, testSecretKey)

	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "accept;host;x-domain-id;x-project-id;x-sdk-date", fake.Stats().SignedHeaders)
}

func TestWrongSecretKeyOrTamperingIsRejectedByTheStandIn(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	fake, srv := standIn(t, clock)
	send := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	wrong := &akskSigner{accessKey: testAccessKey, secretKey: "not-the-secret-key", now: clock}
	require.Equal(t, http.StatusUnauthorized, send(signedRequest(t, srv.URL, wrong)))

	good := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, projectID: "p1", now: clock}
	tampered := signedRequest(t, srv.URL, good)
	tampered.Header.Set("X-Project-Id", "p2") // a signed header changed in transit
	require.Equal(t, http.StatusUnauthorized, send(tampered))

	// A date more than 15 minutes off.
	old := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: func() time.Time { return now.Add(-16 * time.Minute) }}
	require.Equal(t, http.StatusUnauthorized, send(signedRequest(t, srv.URL, old)))
	skewed := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: func() time.Time { return now.Add(14 * time.Minute) }}
	require.Equal(t, http.StatusOK, send(signedRequest(t, srv.URL, skewed)))
	require.EqualValues(t, 3, fake.Stats().Rejected)
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

// A signed request with a body (IAM's key creation) signs the body's hash,
// as the SDK's second vector does, and still sends the body.
func TestSignerSignsTheBody(t *testing.T) {
	now := time.Now()
	fake, srv := standIn(t, func() time.Time { return now })
	_ = fake
	body := `{"credential":{"user_id":"u","description":"d"}}`
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v3/tasks/"+testTask+"/passphrase", strings.NewReader(body))
	require.NoError(t, err)
	s := &akskSigner{accessKey: testAccessKey, secretKey: testSecretKey, now: func() time.Time { return now }}
	require.NoError(t, s.authorize(context.Background(), req))
	withBody := req.Header.Get("Authorization")
	sent, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	require.Equal(t, body, string(sent), "the body is still there to send")

	empty, _ := http.NewRequest(http.MethodPost, srv.URL+"/v3/tasks/"+testTask+"/passphrase", nil)
	require.NoError(t, s.authorize(context.Background(), empty))
	require.NotEqual(t, withBody, empty.Header.Get("Authorization"), "the body is part of the signature")
}
