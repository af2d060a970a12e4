package huawei

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The world of the federation tests: an account "d" with the user alice
// (password and permanent key), an OIDC identity provider "k8s" trusted
// by d, agencies in account "d2" that trust d, and one task. The stand-in
// and the clients share a clock the tests move.

const (
	fedIssuer    = "https://oidc.example.test"
	fedClientID  = "sms-vault"
	fedSubject   = "system:serviceaccount:vault:vault"
	fedIDP       = "k8s"
	fedPassword  = "Alice-pass-0123456789"
	fedAK        = "AKFEDAAAAAAAAAAAAAAA"
	fedSK        = "SK-fed-secret-0123456789abcdef"
	fedTask      = "task-fed-1"
	fedPass      = "pp-fed-0123456789abcdef"
	teamAgency   = "sms-team-a"
	agencyDomain = "d2"
	teamSession  = "role-team-a"
)

type fedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fedClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fedEnv struct {
	t     *testing.T
	clock *fedClock
	fake  *smsfake.Server
	srv   *httptest.Server
	key   *rsa.PrivateKey
	logs  *syncBuffer

	// echo, when set, makes the upstream quote back what the request
	// carried; see serve.
	echo atomic.Value // func(w http.ResponseWriter, r *http.Request, body []byte) bool

	mu      sync.Mutex
	jwt     string
	jwtErr  error
	jwtAsks atomic.Int32
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newFedEnv(t *testing.T, tweak func(*smsfake.Options)) *fedEnv {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	e := &fedEnv{t: t, key: key, logs: &syncBuffer{},
		clock: &fedClock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}}
	opts := smsfake.Options{
		Users:         []smsfake.User{{Domain: "d", Name: "alice", Password: fedPassword}},
		AccessKeys:    map[string]string{fedAK: fedSK},
		AccessKeyUser: "alice",
		Tasks:         map[string]string{fedTask: fedPass},
		TokenLifetime: time.Hour,
		Now:           e.clock.Now,
		IdentityProviders: []smsfake.IdentityProvider{{ID: fedIDP, Domain: "d", Issuer: fedIssuer,
			ClientIDs: []string{fedClientID}, JWKS: e.jwks(&key.PublicKey)}},
		Agencies: []smsfake.Agency{{Name: teamAgency, Domain: agencyDomain, Trusted: []string{"d"}}},
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.fake = smsfake.New(opts)
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	e.jwt = e.sign(nil)
	return e
}

// serve hands every request to the stand-in, unless an echo set by the
// test answers it.
func (e *fedEnv) serve(w http.ResponseWriter, r *http.Request) {
	if f, ok := e.echo.Load().(func(http.ResponseWriter, *http.Request, []byte) bool); ok && f != nil {
		var body []byte
		if r.Body != nil {
			buf := new(bytes.Buffer)
			_, _ = buf.ReadFrom(r.Body)
			body = buf.Bytes()
			r.Body.Close()
			r.Body = nopCloser{bytes.NewReader(body)}
		}
		if f(w, r, body) {
			return
		}
	}
	e.fake.ServeHTTP(w, r)
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (e *fedEnv) jwks(pub *rsa.PublicKey) json.RawMessage {
	raw, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64url(pub.N.Bytes()), "e": b64url(big.NewInt(int64(pub.E)).Bytes())}}})
	return raw
}

// sign makes an ID token with the provider's key; extra overrides claims
// (nil values remove them).
func (e *fedEnv) sign(extra map[string]any) string {
	return e.signWith(e.key, extra)
}

func (e *fedEnv) signWith(key *rsa.PrivateKey, extra map[string]any) string {
	now := e.clock.Now()
	claims := map[string]any{"iss": fedIssuer, "aud": fedClientID, "sub": fedSubject,
		"exp": now.Add(2 * time.Hour).Unix(), "iat": now.Unix()}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	input := b64url(h) + "." + b64url(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	require.NoError(e.t, err)
	return input + "." + b64url(sig)
}

func (e *fedEnv) setJWT(jwt string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jwt, e.jwtErr = jwt, err
}

// idToken is the IDToken option: whatever the test set last.
func (e *fedEnv) idToken(context.Context) (Secret, error) {
	e.jwtAsks.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	return Secret(e.jwt), e.jwtErr
}

func (e *fedEnv) options(method string) Options {
	o := Options{Endpoint: e.srv.URL, IAMEndpoint: e.srv.URL, Method: method, Timeout: 5 * time.Second,
		Now: e.clock.Now, Logger: hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Debug})}
	switch method {
	case MethodIDToken:
		o.IDPID, o.IDToken, o.DomainName = fedIDP, e.idToken, "d"
	case MethodPassword:
		o.Username, o.Password, o.DomainName = "alice", fedPassword, "d"
	case MethodAccessKey:
		o.AccessKey, o.SecretKey = fedAK, fedSK
	}
	return o
}

func (e *fedEnv) client(method string, tweak func(*Options)) *Client {
	e.t.Helper()
	o := e.options(method)
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	require.NoError(e.t, err)
	e.t.Cleanup(c.Close)
	return c
}

// exchanges counts the ID-token exchanges IAM received, assumes the
// assume_role requests.
func (e *fedEnv) exchanges() int64 { return e.fake.Stats().IAMKeyCalls["id-token"] }
func (e *fedEnv) assumes() int64   { return e.fake.Stats().IAMKeyCalls["security-token"] }

func (e *fedEnv) read(c *Client) error {
	p, err := c.Passphrase(context.Background(), fedTask)
	if err == nil {
		require.Equal(e.t, fedPass, p)
	}
	return err
}

func (e *fedEnv) waitRenewed(c *Client) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return !c.Renewing() }, 10*time.Second, 5*time.Millisecond)
}

func asHuaweiError(t *testing.T, err error) *Error {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e)
	return e
}

// pieces are the minFragment-long pieces of a secret, every fourth one.
func pieces(secret string) []string {
	var out []string
	for i := 0; i+minFragment <= len(secret); i += 4 {
		out = append(out, secret[i:i+minFragment])
	}
	return out
}

func requireNoPiece(t *testing.T, text, secret, where string) {
	t.Helper()
	require.NotContains(t, text, secret, where)
	for _, p := range pieces(secret) {
		require.False(t, strings.Contains(text, p), "%s holds a piece of a secret: %q", where, p)
	}
}

// concurrently runs read from n goroutines at once and fails on any error.
func concurrently(t *testing.T, n int, read func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- read()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
