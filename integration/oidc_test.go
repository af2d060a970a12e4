//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The OIDC side of the federation tests: an issuer's signing keys (as a
// Kubernetes API server's service-account issuer would hold them), the
// token file the kubelet projects into a pod, and a record of the ID tokens
// IAM received. Written here, independently of internal/smsfake's own test
// signer, so that the stand-in and the tests do not share a bug.

const (
	oidcIssuer   = "https://kubernetes.default.svc.cluster.local"
	oidcAudience = "huawei-iam"
	oidcSubject  = "system:serviceaccount:vault:vault"
	// fedUserName is what the stand-in's mapping rule makes of oidcSubject.
	fedUserName = "fed-system_serviceaccount_vault_vault"
)

// oidcKey is one signing key of the issuer.
type oidcKey struct{ *smsfake.Issuer }

func newRSAKey(t *testing.T, kid string) *oidcKey {
	t.Helper()
	k, err := smsfake.NewIssuer(kid, "RS256")
	require.NoError(t, err)
	return &oidcKey{k}
}

func newECKey(t *testing.T, kid string) *oidcKey {
	t.Helper()
	k, err := smsfake.NewIssuer(kid, "ES256")
	require.NoError(t, err)
	return &oidcKey{k}
}

// jwksDocument is the JWKS an operator pastes into IAM's identity provider.
func jwksDocument(keys ...*oidcKey) json.RawMessage {
	var issuers []*smsfake.Issuer
	for _, k := range keys {
		issuers = append(issuers, k.Issuer)
	}
	return smsfake.JWKS(issuers...)
}

// idToken signs the claims of a service-account token valid for an hour
// from now, as a compact JWS; the token and its signature are added to
// the values no log may hold.
func (k *oidcKey) idToken(t *testing.T) string {
	t.Helper()
	now := time.Now()
	jwt, err := k.Sign(map[string]any{"iss": oidcIssuer, "aud": []string{oidcAudience}, "sub": oidcSubject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": "vault", "serviceaccount": map[string]string{"name": "vault"}}})
	require.NoError(t, err)
	neverLog(jwt, jwt[strings.LastIndexByte(jwt, '.')+1:])
	return jwt
}

// projectedToken is a service-account token file laid out as the kubelet
// lays out a projected volume: the file is a symlink through "..data" to a
// timestamped directory, and a rotation writes a new directory and swaps
// "..data" atomically. A reader that keeps the file open, or resolves the
// link once, keeps reading the old token.
type projectedToken struct {
	t       *testing.T
	dir     string
	path    string
	current string
	n       int
}

func newProjectedToken(t *testing.T, content string) *projectedToken {
	t.Helper()
	p := &projectedToken{t: t, dir: t.TempDir()}
	p.path = filepath.Join(p.dir, "token")
	p.write(content)
	require.NoError(t, os.Symlink(filepath.Join("..data", "token"), p.path))
	return p
}

func (p *projectedToken) write(content string) {
	p.t.Helper()
	p.n++
	gen := fmt.Sprintf("..2026_12_03_00_00_%02d.%d", p.n, time.Now().UnixNano())
	require.NoError(p.t, os.Mkdir(filepath.Join(p.dir, gen), 0o755))
	require.NoError(p.t, os.WriteFile(filepath.Join(p.dir, gen, "token"), []byte(content), 0o644))
	tmp := filepath.Join(p.dir, "..data_tmp")
	require.NoError(p.t, os.Symlink(gen, tmp))
	require.NoError(p.t, os.Rename(tmp, filepath.Join(p.dir, "..data")))
	if p.current != "" {
		require.NoError(p.t, os.RemoveAll(filepath.Join(p.dir, p.current)))
	}
	p.current = gen
}

// idTokenLog records, in order, the ID tokens that reached IAM's
// id-token call, so that a test can tell which token the engine sent; a
// test may also make IAM hostile, answering that call itself.
type idTokenLog struct {
	mu   sync.Mutex
	sent []string
	// hostile, when set, answers the id-token call with a status and an
	// IAM error message made from the JWT it received.
	hostile func(jwt string) (int, string)
}

func (l *idTokenLog) setHostile(f func(jwt string) (int, string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hostile = f
}

func (l *idTokenLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

func (l *idTokenLog) count() int { return len(l.all()) }

func (l *idTokenLog) last() string {
	all := l.all()
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// startFederatedFake starts the stand-in behind a handler that records the
// ID token of every id-token call before the stand-in checks it.
func startFederatedFake(t *testing.T, opts smsfake.Options) (*fakeSMS, *idTokenLog) {
	t.Helper()
	s := smsfake.New(opts)
	log := &idTokenLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3.0/OS-AUTH/id-token/tokens" && r.Body != nil {
			raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(raw))
			var req struct {
				Auth struct {
					IDToken struct {
						ID string `json:"id"`
					} `json:"id_token"`
				} `json:"auth"`
			}
			_ = json.Unmarshal(raw, &req)
			log.mu.Lock()
			log.sent = append(log.sent, req.Auth.IDToken.ID)
			hostile := log.hostile
			log.mu.Unlock()
			if hostile != nil {
				status, msg := hostile(req.Auth.IDToken.ID)
				body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": status, "message": msg, "title": http.StatusText(status)}})
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write(body)
				return
			}
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &fakeSMS{Server: s, URL: srv.URL}, log
}

// registerWithEnv registers the plugin at version with environment
// variables for its process, as `vault plugin register -env` does.
func (v *vaultServer) registerWithEnv(version string, env ...string) {
	v.t.Helper()
	bin := pluginBinaries[version]
	args := []string{"plugin", "register", "-sha256=" + bin.sha, "-version=" + version, "-command=" + bin.file}
	for _, e := range env {
		args = append(args, "-env="+e)
	}
	v.cliOK(v.rootToken, append(args, "secret", pluginName)...)
}

// registerForIDToken registers the plugin at version as the recipes say,
// with the token file, and with the stand-in's loopback address as the one
// host the JWT and the IAM token may go to (SMS_ID_TOKEN_HOSTS; by default
// only Huawei Cloud's own IAM and SMS hosts may).
func (v *vaultServer) registerForIDToken(version string, tokenFile *projectedToken) {
	v.t.Helper()
	v.registerWithEnv(version, "SMS_ID_TOKEN_FILE="+tokenFile.path, "SMS_ID_TOKEN_HOSTS=127.0.0.1")
}

// neverLogIssued adds every token and temporary credential the stand-in
// issued to the values no log may hold.
func neverLogIssued(fake *fakeSMS) {
	neverLog(fake.IssuedTokens()...)
}

// callsOf returns the trace entries of one SMS call on one task.
func callsOf(calls []smsfake.Call, call, taskID string) []smsfake.Call {
	var out []smsfake.Call
	for _, c := range calls {
		if c.Call == call && c.TaskID == taskID {
			out = append(out, c)
		}
	}
	return out
}

// shown is text for a failure message with every value that no log may
// hold replaced: a failing check must not print the passphrase it caught.
func shown(text string) string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	for _, s := range secretsNeverLogged {
		text = strings.ReplaceAll(text, s, "<secret>")
	}
	return text
}

func traceText(calls []smsfake.Call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "%s %s by %s %s/%s session %q: %d\n", c.Call, c.TaskID, c.Kind, c.Domain, c.Name, c.Session, c.Status)
	}
	return b.String()
}
