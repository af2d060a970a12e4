package smsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// received is an answer as a client saw it: the status and headers, and the
// body as far as it could be read.
type received struct {
	status  int
	body    []byte
	readErr error
}

// servers returns the stand-in over plain HTTP/1.1 and over TLS with HTTP/2
// negotiated, each as a function that sends a request (without reusing
// connections: a reset connection must not be retried silently by the
// transport) and reads the answer whole.
func servers(t *testing.T, s http.Handler) map[string]func(*http.Request) (received, error) {
	t.Helper()
	plain := httptest.NewServer(s)
	t.Cleanup(plain.Close)
	h2 := httptest.NewUnstartedServer(s)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)

	plainClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	h2Transport := h2.Client().Transport.(*http.Transport).Clone()
	h2Transport.ForceAttemptHTTP2 = true
	h2Client := &http.Client{Transport: h2Transport}
	send := func(c *http.Client, wantProto int) func(*http.Request) (received, error) {
		return func(r *http.Request) (received, error) {
			resp, err := c.Do(r)
			if err != nil {
				return received{}, err
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != wantProto {
				t.Fatalf("HTTP/%d was not negotiated: %s", wantProto, resp.Proto)
			}
			body, readErr := io.ReadAll(resp.Body)
			return received{status: resp.StatusCode, body: body, readErr: readErr}, nil
		}
	}
	toPlain, toH2 := send(plainClient, 1), send(h2Client, 2)
	return map[string]func(*http.Request) (received, error){
		"http1": func(r *http.Request) (received, error) {
			r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(plain.URL, "http://")
			return toPlain(r)
		},
		"http2": func(r *http.Request) (received, error) {
			r.URL.Scheme, r.URL.Host = "https", strings.TrimPrefix(h2.URL, "https://")
			return toH2(r)
		},
	}
}

func passphraseRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://placeholder/v3/tasks/t1/passphrase", nil)
	r.Header.Set("X-Auth-Token", "tok")
	return r
}

func tokenRequestFor(password string) *http.Request {
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"u","password":"` + password +
		`","domain":{"name":"d"}}}},"scope":{"domain":{"name":"d"}}}}`
	r, _ := http.NewRequest("POST", "http://placeholder/v3/auth/tokens", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// TestEveryBodyShapeOnEveryStatusBothServicesBothProtocols checks what a
// client sees for each fault: the stand-in must really misbehave as documented.
func TestEveryBodyShapeOnEveryStatusBothServicesBothProtocols(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}, Tasks: map[string]string{"t1": "p1"},
		Users: []User{{Domain: "d", Name: "u", Password: "pw"}}})
	for proto, do := range servers(t, s) {
		for _, target := range []string{"sms", "iam"} {
			for _, status := range []int{200, 401, 403, 404, 429, 500, 503} {
				if target == "iam" && status == 200 {
					status = 201
				}
				for _, shape := range []string{BodyWhole, BodyTruncate, BodyReset, BodyCorruptGzip, BodyShortLength, BodySlow, BodyHuge} {
					name := fmt.Sprintf("%s/%s/%d/%s", proto, target, status, shape)
					t.Run(name, func(t *testing.T) {
						s.ClearFaults()
						require.NoError(t, s.AddFault(Fault{Mode: FaultStatus, Target: target, Status: status, Body: shape,
							Delay: Duration(30 * time.Millisecond), Size: 1 << 20, Times: 1}))
						req := passphraseRequest()
						if target == "iam" {
							req = tokenRequestFor("pw")
						}
						start := time.Now()
						got, err := do(req)
						require.NoError(t, err, "headers always arrive")
						require.Equal(t, status, got.status)
						body, readErr := got.body, got.readErr
						switch shape {
						case BodyWhole:
							require.NoError(t, readErr)
							require.True(t, json.Valid(body), "%q", body)
						case BodyTruncate, BodyReset, BodyCorruptGzip:
							require.Error(t, readErr, "the body must not arrive whole")
						case BodyShortLength:
							if proto == "http1" {
								require.NoError(t, readErr)
								require.False(t, json.Valid(body), "only part of the body is framed")
							} else {
								require.Error(t, readErr)
							}
						case BodySlow:
							require.NoError(t, readErr)
							require.True(t, json.Valid(body))
							require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
						case BodyHuge:
							require.NoError(t, readErr)
							require.Greater(t, len(body), 1<<20)
						}
					})
				}
			}
		}
	}
}

func TestResetBeforeHeadersOnBothProtocols(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}, Tasks: map[string]string{"t1": "p1"}})
	for proto, do := range servers(t, s) {
		require.NoError(t, s.AddFault(Fault{Mode: FaultResetBeforeHeaders, Times: 1}))
		_, err := do(passphraseRequest())
		require.Error(t, err, proto)
	}
}

func TestIAMTokensHaveRealisticSize(t *testing.T) {
	s := New(Options{Users: []User{{Domain: "d", Name: "u", Password: "pw"}}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	req := tokenRequestFor("pw")
	req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)
	require.Len(t, resp.Header.Get("X-Subject-Token"), 4096)
}

func TestIAMLocksOutAfterFailedLogins(t *testing.T) {
	now := time.Now()
	s := New(Options{Users: []User{{Domain: "d", Name: "u", Password: "pw"}}, LockoutAfter: 3,
		LockoutDuration: time.Minute, Now: func() time.Time { return now }})
	srv := httptest.NewServer(s)
	defer srv.Close()
	login := func(password string) (int, string) {
		req := tokenRequestFor(password)
		req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(srv.URL, "http://")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error.Message
	}
	for i := 0; i < 3; i++ {
		status, msg := login("wrong")
		require.Equal(t, 401, status)
		require.Contains(t, msg, "wrong")
	}
	status, msg := login("pw")
	require.Equal(t, 401, status, "locked: even the right password is refused")
	require.Contains(t, msg, "locked")
	now = now.Add(2 * time.Minute)
	status, _ = login("pw")
	require.Equal(t, 201, status, "the lock ends")
	require.EqualValues(t, 4, s.Stats().IAMLoginFailures)
}

func TestEchoCredentialsQuotesWhatTheRequestCarried(t *testing.T) {
	s := New(Options{Tokens: []string{"tok-long-enough"}, Users: []User{{Domain: "d", Name: "u", Password: "pw"}}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	require.NoError(t, s.AddFault(Fault{Mode: FaultEchoCredentials, Status: 401, Times: 1}))
	req, _ := http.NewRequest("GET", srv.URL+"/v3/tasks/t1/passphrase", nil)
	req.Header.Set("X-Auth-Token", "tok-long-enough")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	require.Contains(t, string(body), "tok-long-enough")

	require.NoError(t, s.AddFault(Fault{Mode: FaultEchoCredentials, Target: "iam", Status: 400, EchoPrefix: 1, Times: 1}))
	resp, err = http.Post(srv.URL+"/v3/auth/tokens", "application/json",
		bytes.NewBufferString(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"u","password":"secret-pw","domain":{"name":"d"}}}},"scope":{"domain":{"name":"d"}}}}`))
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode)
	require.Contains(t, string(body), `"message":"request not allowed for s"`, "a prefix of the password only")
}

func TestSinkRecordsCredentials(t *testing.T) {
	k := NewSink()
	srv := httptest.NewServer(k)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v3/auth/tokens", strings.NewReader(`{"password":"in-the-body"}`))
	req.Header.Set("X-Auth-Token", "in-a-header")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	require.Len(t, k.Received(), 1)
	require.True(t, k.Contains("in-the-body"))
	require.True(t, k.Contains("in-a-header"))
	require.False(t, k.Contains("elsewhere"))
}
