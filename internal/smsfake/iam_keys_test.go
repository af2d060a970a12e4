package smsfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testClock is a fake clock that tests move while the server reads it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// keyEnv is a stand-in with users alice and bob in domain d, alice owning
// the permanent key AK1, and task t1.
type keyEnv struct {
	t     *testing.T
	s     *Server
	srv   *httptest.Server
	clock *testClock
}

const (
	aliceAK = "AK1AAAAAAAAAAAAAAAAA"
	aliceSK = "SK1-secret"
)

func newKeyEnv(t *testing.T, tweak func(*Options)) *keyEnv {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 1, 5, 9, 12, 44, 531000000, time.UTC)}
	opts := Options{
		Users:      []User{{Domain: "d", Name: "alice", Password: "Old-pass1"}, {Domain: "d", Name: "bob", Password: "Bob-pass1"}},
		AccessKeys: map[string]string{aliceAK: aliceSK},
		Tasks:      map[string]string{"t1": "p1"},
		Now:        clock.Now,
	}
	if tweak != nil {
		tweak(&opts)
	}
	s := New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &keyEnv{t: t, s: s, srv: srv, clock: clock}
}

// auth adds a credential to a request.
type auth func(*http.Request, []byte)

// signed signs a request with an AK/SK the way the SDK does, host and
// X-Sdk-Date signed.
func (e *keyEnv) signed(ak, sk string) auth { return e.signedTemp(ak, sk, "") }

// signedTemp signs with temporary credentials: the security token is sent
// and signed too (none when token is empty).
func (e *keyEnv) signedTemp(ak, sk, token string) auth {
	return func(r *http.Request, body []byte) {
		date := e.clock.Now().UTC().Format("20060102T150405Z")
		r.Header.Set("X-Sdk-Date", date)
		names := []string{"host", "x-sdk-date"}
		if token != "" {
			r.Header.Set("X-Security-Token", token)
			names = append(names, "x-security-token")
		}
		sig := Signature(r.Method, r.URL.Path, r.URL.Query(), func(name string) string {
			if name == "host" {
				return r.URL.Host
			}
			return r.Header.Get(name)
		}, names, body, date, sk)
		r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access="+ak+", SignedHeaders="+strings.Join(names, ";")+", Signature="+sig)
	}
}

func withToken(tok string) auth {
	return func(r *http.Request, _ []byte) { r.Header.Set("X-Auth-Token", tok) }
}

// call sends a request and returns the status and the decoded body.
func (e *keyEnv) call(method, path, body string, a auth) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json;charset=utf8")
	}
	if a != nil {
		a(req, []byte(body))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &out), "%s", raw)
	}
	return resp.StatusCode, out
}

func (e *keyEnv) login(name, password string) (int, string, map[string]any) {
	e.t.Helper()
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + name + `","password":"` + password +
		`","domain":{"name":"d"}}}},"scope":{"domain":{"name":"d"}}}}`
	resp, err := http.Post(e.srv.URL+"/v3/auth/tokens", "application/json", strings.NewReader(body))
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header.Get("X-Subject-Token"), out
}

func (e *keyEnv) token(name, password string) string {
	e.t.Helper()
	status, tok, _ := e.login(name, password)
	require.Equal(e.t, 201, status)
	return tok
}

// iamMessage is the message of IAM's nested error shape, checking the shape.
func iamMessage(t *testing.T, status int, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "nested IAM error shape: %v", body)
	require.EqualValues(t, status, e["code"])
	require.Equal(t, http.StatusText(status), e["title"])
	return e["message"].(string)
}

func createBody(userID string) string {
	return `{"credential":{"user_id":"` + userID + `","description":"vault-sms"}}`
}

func TestIDsAndTokenBodyNameTheUser(t *testing.T) {
	require.Regexp(t, `^[0-9a-f]{32}$`, UserID("d", "alice"))
	require.NotEqual(t, UserID("d", "alice"), UserID("d", "bob"))
	require.Regexp(t, `^[0-9a-f]{32}$`, DomainID("d"))
	require.NotEqual(t, DomainID("d"), UserID("d", ""))

	e := newKeyEnv(t, nil)
	status, _, body := e.login("alice", "Old-pass1")
	require.Equal(t, 201, status)
	tok := body["token"].(map[string]any)
	require.Equal(t, map[string]any{"id": UserID("d", "alice"), "name": "alice", "password_expires_at": "",
		"domain": map[string]any{"id": DomainID("d"), "name": "d"}}, tok["user"])
	require.Contains(t, tok, "issued_at")
	require.Contains(t, tok, "expires_at")
}

func TestAccessKeyCallsEnforceOwnership(t *testing.T) {
	e := newKeyEnv(t, nil)
	alice, bob := UserID("d", "alice"), UserID("d", "bob")
	asAlice := e.signed(aliceAK, aliceSK)
	bobTok := e.token("bob", "Bob-pass1")

	// Show: by signature or by token of the owner; another user is refused.
	status, body := e.call("GET", credentialsPath+"/"+aliceAK, "", asAlice)
	require.Equal(t, 200, status)
	cred := body["credential"].(map[string]any)
	require.Equal(t, alice, cred["user_id"])
	require.Equal(t, aliceAK, cred["access"])
	require.Equal(t, "active", cred["status"])
	require.Equal(t, "2026-01-05T09:12:44.531000Z", cred["create_time"])
	require.Equal(t, cred["create_time"], cred["last_use_time"])
	require.NotContains(t, cred, "secret")
	status, _ = e.call("GET", credentialsPath+"/"+aliceAK, "", withToken(e.token("alice", "Old-pass1")))
	require.Equal(t, 200, status)
	status, body = e.call("GET", credentialsPath+"/"+aliceAK, "", withToken(bobTok))
	require.Equal(t, 403, status)
	iamMessage(t, 403, body)
	status, body = e.call("GET", credentialsPath+"/NOSUCHKEY", "", asAlice)
	require.Equal(t, 404, status)
	iamMessage(t, 404, body)
	status, body = e.call("GET", credentialsPath+"/"+aliceAK, "", nil)
	require.Equal(t, 401, status)
	iamMessage(t, 401, body)
	status, body = e.call("GET", credentialsPath+"/"+aliceAK, "", e.signed(aliceAK, "wrong"))
	require.Equal(t, 401, status)
	require.Contains(t, iamMessage(t, 401, body), "signature")

	// List: one's own keys only.
	status, body = e.call("GET", credentialsPath, "", asAlice)
	require.Equal(t, 200, status)
	require.Len(t, body["credentials"], 1)
	status, _ = e.call("GET", credentialsPath+"?user_id="+alice, "", asAlice)
	require.Equal(t, 200, status)
	status, _ = e.call("GET", credentialsPath+"?user_id="+bob, "", asAlice)
	require.Equal(t, 403, status)
	status, body = e.call("GET", credentialsPath, "", withToken(bobTok))
	require.Equal(t, 200, status)
	require.Empty(t, body["credentials"])

	// Create: for oneself only, two keys at most.
	status, _ = e.call("POST", credentialsPath, createBody(bob), asAlice)
	require.Equal(t, 403, status)
	status, _ = e.call("POST", credentialsPath, `{"credential":{}}`, asAlice)
	require.Equal(t, 400, status)
	status, body = e.call("POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, 201, status)
	cred = body["credential"].(map[string]any)
	newAK, newSK := cred["access"].(string), cred["secret"].(string)
	require.Regexp(t, `^[A-Z0-9]{20}$`, newAK)
	require.Regexp(t, `^[A-Za-z0-9]{40}$`, newSK)
	require.Equal(t, "active", cred["status"])
	require.Equal(t, alice, cred["user_id"])
	require.Equal(t, "vault-sms", cred["description"])
	_, err := time.Parse(createTimeFormat, cred["create_time"].(string))
	require.NoError(t, err)
	require.True(t, e.s.KeyWorks(newAK, newSK))
	require.False(t, e.s.KeyWorks(newAK, "wrong"))
	keys := e.s.Keys("d", "alice")
	require.Len(t, keys, 2)
	require.Equal(t, []string{aliceAK, newAK}, []string{keys[0].Access, keys[1].Access})
	require.Equal(t, newSK, keys[1].Secret)

	raw := rawCall(t, e, "POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, 400, raw.status)
	require.JSONEq(t, `{"error":{"message":"akSkNumExceed","code":400,"title":"Bad Request"}}`, string(raw.body))
	require.Len(t, e.s.Keys("d", "alice"), 2)

	status, body = e.call("GET", credentialsPath, "", e.signed(newAK, newSK))
	require.Equal(t, 200, status)
	list := body["credentials"].([]any)
	require.Len(t, list, 2)
	require.Equal(t, aliceAK, list[0].(map[string]any)["access"])
	require.Equal(t, newAK, list[1].(map[string]any)["access"])
	require.Equal(t, alice, list[1].(map[string]any)["user_id"])

	// Delete: the owner only; the deleted key fails at once, even though it
	// signed its own deletion.
	status, _ = e.call("DELETE", credentialsPath+"/"+aliceAK, "", withToken(bobTok))
	require.Equal(t, 403, status)
	status, _ = e.call("DELETE", credentialsPath+"/NOSUCHKEY", "", asAlice)
	require.Equal(t, 404, status)
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", asAlice)
	require.Equal(t, 200, status)
	status, body = e.call("DELETE", credentialsPath+"/"+aliceAK, "", asAlice)
	require.Equal(t, 204, status)
	require.Nil(t, body)
	status, body = e.call("GET", "/v3/tasks/t1/passphrase", "", asAlice)
	require.Equal(t, 401, status)
	require.Contains(t, body["error_msg"], "the access key does not exist")
	status, _ = e.call("GET", credentialsPath+"/"+newAK, "", asAlice)
	require.Equal(t, 401, status)
	status, _ = e.call("GET", credentialsPath+"/"+aliceAK, "", e.signed(newAK, newSK))
	require.Equal(t, 404, status)
	require.False(t, e.s.KeyWorks(aliceAK, aliceSK))
	require.Len(t, e.s.Keys("d", "alice"), 1)
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", e.signed(newAK, newSK))
	require.Equal(t, 200, status)

	// Other methods, other paths.
	status, body = e.call("PUT", credentialsPath+"/"+newAK, `{}`, e.signed(newAK, newSK))
	require.Equal(t, 405, status)
	iamMessage(t, 405, body)
	status, _ = e.call("PATCH", credentialsPath, `{}`, nil)
	require.Equal(t, 405, status)
	status, _ = e.call("GET", "/v3/users/"+alice+"/password", "", nil)
	require.Equal(t, 405, status)
	status, body = e.call("GET", credentialsPath+"/a/b", "", nil)
	require.Equal(t, 404, status)
	require.Equal(t, "APIGW.0101", body["error_code"])

	st := e.s.Stats()
	require.EqualValues(t, 8, st.IAMKeyCalls[callShowKey])
	require.EqualValues(t, 5, st.IAMKeyCalls[callListKeys])
	require.EqualValues(t, 4, st.IAMKeyCalls[callCreateKey])
	require.EqualValues(t, 3, st.IAMKeyCalls[callDeleteKey])
}

// rawCall is call without decoding the body.
func rawCall(t *testing.T, e *keyEnv, method, path, body string, a auth) received {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if a != nil {
		a(req, []byte(body))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return received{status: resp.StatusCode, body: raw, readErr: err}
}

func TestKeyOwnerDefaultsAndTemporaryKeys(t *testing.T) {
	s := New(Options{AccessKeys: map[string]string{"AK": "SK"}})
	require.Len(t, s.Keys("key-domain", "key-user"), 1)
	require.Equal(t, "", s.Password("key-domain", "key-user"))
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v3/auth/tokens", "application/json", strings.NewReader(
		`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"key-user","password":"","domain":{"name":"key-domain"}}}},"scope":{"domain":{"name":"key-domain"}}}}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode, "an implicit user has no password to log in with")

	s = New(Options{AccessKeys: map[string]string{"AK": "SK"}, AccessKeyUser: "bob",
		Users: []User{{Domain: "d", Name: "alice", Password: "a"}, {Domain: "d", Name: "bob", Password: "b"}}})
	require.Len(t, s.Keys("d", "bob"), 1)
	require.Empty(t, s.Keys("d", "alice"))
	s = New(Options{AccessKeys: map[string]string{"AK": "SK"}, AccessKeyUser: "e/carol"})
	require.Len(t, s.Keys("e", "carol"), 1)

	// A temporary key acts as the key user but is not one of its keys.
	e := newKeyEnv(t, func(o *Options) {
		o.AccessKeys["TEMPAK"] = "TEMPSK"
		o.SecurityTokens = map[string]string{"TEMPAK": "sectok"}
	})
	require.Len(t, e.s.Keys("d", "alice"), 1)
	require.True(t, e.s.KeyWorks("TEMPAK", "TEMPSK"))
	withSecurityToken := func(r *http.Request, body []byte) {
		date := e.clock.Now().UTC().Format("20060102T150405Z")
		r.Header.Set("X-Sdk-Date", date)
		r.Header.Set("X-Security-Token", "sectok")
		names := []string{"host", "x-sdk-date", "x-security-token"}
		sig := Signature(r.Method, r.URL.Path, r.URL.Query(), func(name string) string {
			if name == "host" {
				return r.URL.Host
			}
			return r.Header.Get(name)
		}, names, body, date, "TEMPSK")
		r.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=TEMPAK, SignedHeaders=host;x-sdk-date;x-security-token, Signature="+sig)
	}
	status, body := e.call("GET", credentialsPath, "", withSecurityToken)
	require.Equal(t, 200, status)
	require.Len(t, body["credentials"], 1)
	status, _ = e.call("POST", credentialsPath, createBody(UserID("d", "alice")), withSecurityToken)
	require.Equal(t, 201, status, "the temporary key does not count towards the limit")
}

func TestNewKeyIsValidOnlyAfterTheActivationDelay(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.KeyActivationDelay = 5 * time.Second })
	status, body := e.call("POST", credentialsPath, createBody(UserID("d", "alice")), e.signed(aliceAK, aliceSK))
	require.Equal(t, 201, status)
	cred := body["credential"].(map[string]any)
	ak, sk := cred["access"].(string), cred["secret"].(string)
	keys := e.s.Keys("d", "alice")
	require.Equal(t, keys[1].Created.Add(5*time.Second), keys[1].ValidFrom)

	require.False(t, e.s.KeyWorks(ak, sk))
	status, body = e.call("GET", "/v3/tasks/t1/passphrase", "", e.signed(ak, sk))
	require.Equal(t, 401, status)
	require.Contains(t, body["error_msg"], "not yet valid")
	status, body = e.call("GET", credentialsPath+"/"+ak, "", e.signed(ak, sk))
	require.Equal(t, 401, status)
	require.Contains(t, iamMessage(t, 401, body), "not yet valid")

	e.clock.Add(5 * time.Second)
	require.True(t, e.s.KeyWorks(ak, sk))
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", e.signed(ak, sk))
	require.Equal(t, 200, status)
}

func TestConcurrentCreatesRespectTheLimit(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.MaxKeysPerUser = 3 })
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.srv.URL+credentialsPath, strings.NewReader(createBody(UserID("d", "alice"))))
			e.signed(aliceAK, aliceSK)(req, []byte(createBody(UserID("d", "alice"))))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	require.Equal(t, map[int]int{201: 2, 400: 6}, count)
	require.Len(t, e.s.Keys("d", "alice"), 3)
}

func TestChangePassword(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) {
		o.Users[0].Name = "Alice"
		o.AccessKeyUser = "Alice"
	})
	alice := UserID("d", "Alice")
	path := "/v3/users/" + alice + "/password"
	tok := e.token("Alice", "Old-pass1")
	bobTok := e.token("bob", "Bob-pass1")
	change := func(a auth, original, password string) (int, string) {
		body, _ := json.Marshal(map[string]any{"user": map[string]string{"original_password": original, "password": password}})
		status, out := e.call("POST", path, string(body), a)
		if status == 204 {
			require.Nil(t, out)
			return status, ""
		}
		return status, iamMessage(t, status, out)
	}

	status, _ := change(nil, "Old-pass1", "New-pass2")
	require.Equal(t, 401, status)
	status, _ = change(e.signed(aliceAK, aliceSK), "Old-pass1", "New-pass2")
	require.Equal(t, 401, status, "a token is needed")
	status, _ = change(withToken(bobTok), "Old-pass1", "New-pass2")
	require.Equal(t, 403, status)
	status, _ = e.call("POST", path, `{"user":{}}`, withToken(tok))
	require.Equal(t, 400, status)

	for _, c := range []struct{ original, password, want string }{
		{"wrong", "New-pass2", "(1103)"},
		{"Old-pass1", "Old-pass1", "(1108)"},
		{"Old-pass1", "Ab1-x", "(1118)"},                          // too short
		{"Old-pass1", "Ab1-" + strings.Repeat("x", 29), "(1118)"}, // too long
		{"Old-pass1", "abcdefgh", "(1118)"},                       // one kind of character
		{"Old-pass1", "ABCDEFGH", "(1118)"},
		{"Old-pass1", "12345678", "(1118)"},
		{"Old-pass1", "!@#$%^&*", "(1118)"},
		{"Old-pass1", "my-alice-9", "(1118)"}, // the name, any case
		{"Old-pass1", "ECILA-pw9", "(1118)"},  // the name reversed
	} {
		status, msg := change(withToken(tok), c.original, c.password)
		require.Equal(t, 400, status, c.password)
		require.Contains(t, msg, c.want, c.password)
	}
	require.Equal(t, "Old-pass1", e.s.Password("d", "Alice"))
	for _, ok := range []string{"abcdef1", "Ab" + strings.Repeat("c", 30), "lower-case", "UPPER1"} {
		require.Empty(t, weakPassword("Alice", ok), ok)
	}
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", withToken(tok))
	require.Equal(t, 200, status, "failed changes revoke nothing")

	status, _ = change(withToken(tok), "Old-pass1", "New-pass2")
	require.Equal(t, 204, status)
	require.Equal(t, "New-pass2", e.s.Password("d", "Alice"))
	status, _, _ = e.login("Alice", "Old-pass1")
	require.Equal(t, 401, status, "the old password is refused at once")
	status, body := e.call("GET", "/v3/tasks/t1/passphrase", "", withToken(tok))
	require.Equal(t, 401, status, "the user's tokens are revoked")
	require.Contains(t, body["error_msg"], "invalid")
	status, _ = change(withToken(tok), "New-pass2", "Newer-pass3")
	require.Equal(t, 401, status)
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", withToken(bobTok))
	require.Equal(t, 200, status, "another user's tokens live on")

	tok = e.token("Alice", "New-pass2")
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", withToken(tok))
	require.Equal(t, 200, status)
	require.EqualValues(t, 16, e.s.Stats().IAMKeyCalls[callChangePassword])

	e.s.AddUser(User{Domain: "d", Name: "carol", Password: "Carol-1x"})
	e.s.AddUser(User{Domain: "d", Name: "bob", Password: "Bob-pass9"})
	e.token("carol", "Carol-1x")
	e.token("bob", "Bob-pass9")
	require.Equal(t, "Bob-pass9", e.s.Password("d", "bob"))
}

func TestIAMFaultsPerCall(t *testing.T) {
	e := newKeyEnv(t, nil)
	alice := UserID("d", "alice")
	asAlice := e.signed(aliceAK, aliceSK)

	require.Error(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: "passphrase", Status: 500}))
	require.Error(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "sms", Call: "create-key", Status: 500}))
	require.Error(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: "rotate", Status: 500}))

	require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: callCreateKey, Status: 503, Times: 1}))
	status, _ := e.call("GET", credentialsPath+"/"+aliceAK, "", asAlice)
	require.Equal(t, 200, status, "other calls are untouched")
	status, body := e.call("POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, 503, status)
	iamMessage(t, 503, body)
	require.Len(t, e.s.Keys("d", "alice"), 1, "a refused create creates nothing")
	status, body = e.call("POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, 201, status)
	newAK := body["credential"].(map[string]any)["access"].(string)

	for _, call := range []string{callShowKey, callListKeys, callDeleteKey, callChangePassword, callToken} {
		require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: call, Status: 500, Times: 1}))
	}
	status, _ = e.call("GET", credentialsPath+"/"+aliceAK, "", asAlice)
	require.Equal(t, 500, status)
	status, _ = e.call("GET", credentialsPath, "", asAlice)
	require.Equal(t, 500, status)
	status, _ = e.call("DELETE", credentialsPath+"/"+newAK, "", asAlice)
	require.Equal(t, 500, status)
	require.Len(t, e.s.Keys("d", "alice"), 2, "a refused delete deletes nothing")
	status, _ = e.call("POST", "/v3/users/"+alice+"/password", `{"user":{"original_password":"Old-pass1","password":"New-pass2"}}`, nil)
	require.Equal(t, 500, status)
	status, _, _ = e.login("alice", "Old-pass1")
	require.Equal(t, 500, status)

	// A fault without a call hits every IAM call, and no SMS call.
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Status: 502, Times: 2}))
	status, _ = e.call("GET", "/v3/tasks/t1/passphrase", "", asAlice)
	require.Equal(t, 200, status)
	status, _ = e.call("GET", credentialsPath, "", asAlice)
	require.Equal(t, 502, status)
	status, _, _ = e.login("alice", "Old-pass1")
	require.Equal(t, 502, status)
	require.EqualValues(t, 8, e.s.Stats().Faults)
}

// A create whose answer is held has created the key upstream: the client
// waits, the key exists.
func TestHeldCreateAnswerLeavesTheKeyCreated(t *testing.T) {
	e := newKeyEnv(t, nil)
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: callCreateKey, Body: BodyHold, Times: 1}))
	done := make(chan received, 1)
	go func() {
		body := createBody(UserID("d", "alice"))
		req, _ := http.NewRequest("POST", e.srv.URL+credentialsPath, strings.NewReader(body))
		e.signed(aliceAK, aliceSK)(req, []byte(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- received{readErr: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		done <- received{status: resp.StatusCode, body: raw, readErr: err}
	}()
	require.Eventually(t, func() bool { return len(e.s.Keys("d", "alice")) == 2 }, 5*time.Second, 5*time.Millisecond)
	select {
	case <-done:
		t.Fatal("the answer arrived before Release")
	case <-time.After(50 * time.Millisecond):
	}
	e.s.Release()
	got := <-done
	require.NoError(t, got.readErr)
	require.Equal(t, 201, got.status)
	var body struct {
		Credential struct{ Access, Secret string } `json:"credential"`
	}
	require.NoError(t, json.Unmarshal(got.body, &body))
	keys := e.s.Keys("d", "alice")
	require.Equal(t, body.Credential.Access, keys[1].Access)
	require.Equal(t, body.Credential.Secret, keys[1].Secret)
}

func TestEchoFaultQuotesPasswordsOfAPasswordChange(t *testing.T) {
	e := newKeyEnv(t, nil)
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultEchoCredentials, Target: "iam", Call: callChangePassword, Status: 400}))
	raw := rawCall(t, e, "POST", "/v3/users/"+UserID("d", "alice")+"/password",
		`{"user":{"original_password":"Old-pass1","password":"New-pass2"}}`, withToken("tok-x"))
	require.Equal(t, 400, raw.status)
	for _, v := range []string{"tok-x", "Old-pass1", "New-pass2"} {
		require.Contains(t, string(raw.body), v)
	}
}

func TestControlAPIListsKeysWithoutSecrets(t *testing.T) {
	e := newKeyEnv(t, nil)
	status, _ := e.call("POST", credentialsPath, createBody(UserID("d", "alice")), e.signed(aliceAK, aliceSK))
	require.Equal(t, 201, status)
	raw := rawCall(t, e, "GET", "/__fake/keys?domain=d&name=alice", "", nil)
	require.Equal(t, 200, raw.status)
	require.NotContains(t, string(raw.body), aliceSK)
	require.NotContains(t, string(raw.body), e.s.Keys("d", "alice")[1].Secret)
	var keys []KeyInfo
	require.NoError(t, json.Unmarshal(raw.body, &keys))
	require.Len(t, keys, 2)
	require.Equal(t, aliceAK, keys[0].Access)
	require.Equal(t, "active", keys[1].Status)
	require.Equal(t, "vault-sms", keys[1].Description)
	raw = rawCall(t, e, "GET", "/__fake/keys?domain=d&name=nobody", "", nil)
	require.JSONEq(t, `[]`, string(raw.body))
}
