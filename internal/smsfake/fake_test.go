package smsfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The verifier is checked against the official SDK's vectors, independently
// of the plugin's signer.
func TestSignatureReproducesTheSDKVectors(t *testing.T) {
	header := func(name string) string {
		return map[string]string{"x-sdk-date": "20060102T150405Z"}[name]
	}
	sig := Signature("GET", "/path", url.Values{"limit": {"1"}}, header, []string{"x-sdk-date"}, nil, "20060102T150405Z", "SecretKey")
	require.Equal(t, "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624", sig)

	sig = Signature("POST", "/path", url.Values{"key": {"value"}}, header, []string{"x-sdk-date"},
		[]byte("{\"Name\":\"test\",\"Id\":1}\n"), "20060102T150405Z", "SecretKey")
	require.Equal(t, "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59", sig)
}

func TestVerifierAcceptsTheVectorRequestAndRejectsChanges(t *testing.T) {
	at, _ := time.Parse("20060102T150405Z", "20060102T150405Z")
	s := New(Options{AccessKeys: map[string]string{"AccessKey": "SecretKey"}, Now: func() time.Time { return at.Add(time.Minute) }})
	build := func(method, target, body string) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("X-Sdk-Date", "20060102T150405Z")
		r.Header["TEST_UNDERSCORE"] = []string{"TEST_VALUE"}
		return r
	}

	r := build("GET", "http://example.huaweicloud.com/path?limit=1", "")
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")
	signed, err := s.verifySignature(r)
	require.NoError(t, err)
	require.Equal(t, "x-sdk-date", signed)

	r = build("POST", "http://example.huaweicloud.com/path?key=value", "{\"Name\":\"test\",\"Id\":1}\n")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59")
	_, err = s.verifySignature(r)
	require.NoError(t, err)

	// The same signature over another query, or with another key, fails.
	r = build("GET", "http://example.huaweicloud.com/path?limit=2", "")
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")
	_, err = s.verifySignature(r)
	require.ErrorContains(t, err, "signature")

	r = build("GET", "http://example.huaweicloud.com/path?limit=1", "")
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=OtherKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")
	_, err = s.verifySignature(r)
	require.ErrorContains(t, err, "access key")

	// Sixteen minutes later the date is refused.
	late := New(Options{AccessKeys: map[string]string{"AccessKey": "SecretKey"}, Now: func() time.Time { return at.Add(16 * time.Minute) }})
	r = build("GET", "http://example.huaweicloud.com/path?limit=1", "")
	r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")
	_, err = late.verifySignature(r)
	require.ErrorContains(t, err, "15 minutes")
}

func TestQueryEncodingVector(t *testing.T) {
	// Signing the reference's query vector must use its canonical form; check
	// the encoder on each value.
	require.Equal(t, "%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29", encode("一 (&=?!#%.*)"))
	require.Equal(t, "%2Ftmp%2F123", encode("/tmp/123"))
}

// answered is what get saw of an answer: its status and headers (the body,
// read and closed, is returned decoded).
type answered struct {
	StatusCode int
	Header     http.Header
}

func get(t *testing.T, srv *httptest.Server, path string, header map[string]string) (answered, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return answered{StatusCode: resp.StatusCode, Header: resp.Header}, body
}

func TestPassphraseAPI(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}, Tasks: map[string]string{"t1": "p1"}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	resp, body := get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": "tok"})
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, map[string]any{"task_id": "t1", "passphrase": "p1"}, body)
	require.Len(t, resp.Header.Get("X-Request-Id"), 32)

	resp, body = get(t, srv, "/v3/tasks/t2/passphrase", map[string]string{"X-Auth-Token": "tok"})
	require.Equal(t, 404, resp.StatusCode)
	require.Equal(t, "SMS.1801", body["error_code"])

	resp, body = get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": "wrong"})
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, "APIGW.0301", body["error_code"])
	resp, _ = get(t, srv, "/v3/tasks/t1/passphrase", nil)
	require.Equal(t, 401, resp.StatusCode)

	resp, body = get(t, srv, "/v3/nothing", nil)
	require.Equal(t, 404, resp.StatusCode)
	require.Equal(t, "APIGW.0101", body["error_code"])

	st := s.Stats()
	require.EqualValues(t, 4, st.Requests)
	require.EqualValues(t, 2, st.Rejected)
	require.EqualValues(t, 2, st.ByAuth["token"])
	require.EqualValues(t, 3, st.ByTask["t1"])
}

func TestForbiddenBodyMatchesTheReference(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}})
	require.NoError(t, s.AddFault(Fault{Mode: FaultStatus, Status: 403}))
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, body := get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": "tok"})
	require.Equal(t, 403, resp.StatusCode)
	for _, k := range []string{"error_code", "error_msg", "encoded_authorization_message", "error_param", "details"} {
		require.Contains(t, body, k)
	}
	require.Equal(t, "SMS.9004", body["error_code"])
}

func TestIAMTokens(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := New(Options{Users: []User{{Domain: "d", Name: "u", Password: "p"}}, Tasks: map[string]string{"t1": "p1"},
		TokenLifetime: time.Hour, Now: clock})
	srv := httptest.NewServer(s)
	defer srv.Close()

	issue := func(user, password string) *http.Response {
		body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + user + `","password":"` + password +
			`","domain":{"name":"d"}}}},"scope":{"domain":{"name":"d"}}}}`
		resp, err := http.Post(srv.URL+"/v3/auth/tokens", "application/json", bytes.NewBufferString(body))
		require.NoError(t, err)
		return resp
	}
	resp := issue("u", "p")
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)
	token := resp.Header.Get("X-Subject-Token")
	require.NotEmpty(t, token)
	var parsed struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			IssuedAt  string `json:"issued_at"`
		} `json:"token"`
	}
	require.NoError(t, json.Unmarshal(raw, &parsed))
	expires, err := time.Parse(time.RFC3339Nano, parsed.Token.ExpiresAt)
	require.NoError(t, err)
	require.WithinDuration(t, now.Add(time.Hour), expires, time.Second)

	r, _ := get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": token})
	require.Equal(t, 200, r.StatusCode)

	resp = issue("u", "wrong")
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)

	// Expiry and revocation both end a token's life.
	now = now.Add(2 * time.Hour)
	r, body := get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": token})
	require.Equal(t, 401, r.StatusCode)
	require.Contains(t, body["error_msg"], "expired")

	now = now.Add(-2 * time.Hour)
	s.RevokeTokens()
	r, _ = get(t, srv, "/v3/tasks/t1/passphrase", map[string]string{"X-Auth-Token": token})
	require.Equal(t, 401, r.StatusCode)

	st := s.Stats()
	require.EqualValues(t, 2, st.IAMTokenRequests)
	require.EqualValues(t, 1, st.IAMTokensIssued)
}

func TestFaultsAndControlAPI(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}, Tasks: map[string]string{"t1": "p1"}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	control := func(method, path, body string) int {
		req, _ := http.NewRequest(method, srv.URL+"/__fake/"+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	auth := map[string]string{"X-Auth-Token": "tok"}

	require.Equal(t, 204, control("POST", "faults", `{"mode":"status","status":429,"retry_after":"3","times":2,"task_id":"t1"}`))
	for i := 0; i < 2; i++ {
		resp, body := get(t, srv, "/v3/tasks/t1/passphrase", auth)
		require.Equal(t, 429, resp.StatusCode)
		require.Equal(t, "3", resp.Header.Get("Retry-After"))
		require.Equal(t, "APIGW.0308", body["error_code"])
	}
	resp, _ := get(t, srv, "/v3/tasks/t1/passphrase", auth)
	require.Equal(t, 200, resp.StatusCode, "the fault retires after its two uses")

	require.Equal(t, 204, control("PUT", "tasks/t9", `{"passphrase":"p9"}`))
	_, body := get(t, srv, "/v3/tasks/t9/passphrase", auth)
	require.Equal(t, "p9", body["passphrase"])
	require.Equal(t, 204, control("DELETE", "tasks/t9", ""))
	resp, _ = get(t, srv, "/v3/tasks/t9/passphrase", auth)
	require.Equal(t, 404, resp.StatusCode)

	for mode, check := range map[string]func(*http.Response, error){
		FaultMalformedJSON: func(r *http.Response, err error) {
			require.NoError(t, err)
			var v any
			require.Error(t, json.NewDecoder(r.Body).Decode(&v))
		},
		FaultOversized: func(r *http.Response, err error) {
			require.NoError(t, err)
			b, _ := io.ReadAll(r.Body)
			require.Greater(t, len(b), 64<<10)
		},
		FaultResetBeforeHeaders: func(r *http.Response, err error) { require.Error(t, err) },
		FaultResetMidBody: func(r *http.Response, err error) {
			require.NoError(t, err)
			_, err = io.ReadAll(r.Body)
			require.Error(t, err)
		},
	} {
		require.Equal(t, 204, control("POST", "faults", `{"mode":"`+mode+`","times":1}`))
		req, _ := http.NewRequest("GET", srv.URL+"/v3/tasks/t1/passphrase", nil)
		req.Header.Set("X-Auth-Token", "tok")
		// A fresh connection each time: Go silently retries a reset on a reused one.
		r, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		check(r, err)
		if r != nil {
			r.Body.Close()
		}
	}

	require.Equal(t, 400, control("POST", "faults", `{"mode":"explode"}`))
	require.Equal(t, 204, control("POST", "faults", `{"mode":"status","status":500}`))
	require.Equal(t, 204, control("DELETE", "faults", ""))
	resp, _ = get(t, srv, "/v3/tasks/t1/passphrase", auth)
	require.Equal(t, 200, resp.StatusCode)

	require.Equal(t, 204, control("PUT", "latency", `{"latency":"1ms"}`))
	resp, _ = get(t, srv, "/__fake/stats", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 204, control("DELETE", "stats", ""))
	require.Zero(t, s.Stats().Requests)
}
