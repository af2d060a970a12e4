package sms

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The tests in this file each guard one defect of the hardening issue: a way
// a hostile upstream, or a caller with a narrow grant, could make the engine
// crash, leak a secret, lock out its IAM user or serve an answer it promised
// not to serve. Each failed on the code before its fix.

// fragmentLen is the shortest piece of a credential that counts as a leak.
const fragmentLen = 12

// assertNoFragment fails if text holds any fragmentLen-long piece of secret.
// The failure shows neither the text nor the secret.
func assertNoFragment(t *testing.T, where, text, secret string) {
	t.Helper()
	if len(secret) < fragmentLen {
		if strings.Contains(text, secret) {
			t.Errorf("%s contains a credential", where)
		}
		return
	}
	for i := 0; i+fragmentLen <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+fragmentLen]) {
			t.Errorf("%s contains a %d-character piece of a credential (at offset %d of %d)", where, fragmentLen, i, len(secret))
			return
		}
	}
}

// Defect 1: any bytes an upstream sends, on any status, and any way it closes
// the connection, give the reader a 502 or 504, never a crash of the plugin.
func TestBrokenAnswersOnEveryStatusAreA502Or504NeverAPanic(t *testing.T) {
	statuses := []int{200, 401, 403, 404, 429, 500, 503}
	shapes := []string{smsfake.BodyTruncate, smsfake.BodyReset, smsfake.BodyCorruptGzip, smsfake.BodyShortLength, smsfake.BodyHuge, smsfake.BodySlow}
	for _, proto := range []string{"http1", "http2"} {
		for _, target := range []string{"sms", "iam"} {
			for _, status := range statuses {
				if target == "iam" && status == 200 {
					status = 201
				}
				for _, shape := range shapes {
					t.Run(fmt.Sprintf("%s/%s/%d/%s", proto, target, status, shape), func(t *testing.T) {
						t.Parallel()
						env := newTestEnv(t)
						endpoint := env.srv.URL
						cfg := map[string]any{"max_retries": 1, "request_timeout": "1s", "cache_ttl": 0}
						if proto == "http2" {
							tlsSrv := httptest.NewUnstartedServer(env.fake)
							tlsSrv.EnableHTTP2 = true
							tlsSrv.StartTLS()
							t.Cleanup(tlsSrv.Close)
							endpoint = tlsSrv.URL
							cfg["ca_cert"] = certPEM(tlsSrv.Certificate().Raw)
						}
						cfg["endpoint"] = endpoint
						if target == "iam" {
							env.configurePassword(mergeMaps(cfg, map[string]any{"iam_endpoint": endpoint}))
						} else {
							env.configure(cfg)
						}
						// Every attempt, retries included, meets the fault.
						require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: target,
							Status: status, Body: shape, Delay: smsfake.Duration(5 * time.Second), Size: 1 << 20}))

						_, got, msg := env.readPassphrase(testTask)
						require.Contains(t, []int{http.StatusBadGateway, http.StatusGatewayTimeout}, got, msg)
						require.Contains(t, msg, strings.ToUpper(target), "the message names the service: %s", msg)
						assertNoSecrets(t, msg)
						for _, tok := range env.fake.IssuedTokens() {
							assertNoFragment(t, "the message", msg, tok)
						}

						// The mount keeps serving. An IAM refusal is remembered
						// until a config write (see the lockout test).
						env.fake.ClearFaults()
						if target == "iam" {
							env.configurePassword(mergeMaps(cfg, map[string]any{"iam_endpoint": endpoint}))
						}
						resp, got, msg := env.readPassphrase(testTask)
						require.Equal(t, http.StatusOK, got, msg)
						require.Equal(t, testPassphrase, resp.Data["passphrase"])
					})
				}
			}
		}
	}
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Defect 1, last line of defence: a panic in the function run under
// singleflight becomes a 500 for that read, logged without secrets, and the
// process keeps serving.
func TestPanicInAFetchIsA500AndTheMountKeepsServing(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.b.fetchHook = func() { panic("boom with " + testToken) }
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusInternalServerError, status, msg)
	assertNoSecrets(t, msg)
	require.Contains(t, env.logs.String(), "[ERROR]")
	require.Contains(t, env.logs.String(), "panic")

	env.b.fetchHook = nil
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
}

// Defect 2: a secret sent with the wrong JSON type is never echoed, neither by
// the existence check Vault runs first (its error goes to Vault's log and the
// audit log) nor by the request itself. Every field of every path is tried.
func TestWrongJSONTypesNeverEchoAValue(t *testing.T) {
	env := newTestEnv(t)
	const marker = "MARKER-secret-value-0a1b2c3d"
	shapes := map[string]any{
		"list":   []any{marker},
		"map":    map[string]any{"a": marker},
		"nested": []any{map[string]any{"k": []any{marker}}},
	}
	for _, p := range env.b.Paths {
		for field := range p.Fields {
			for shapeName, value := range shapes {
				path := samplePath(p.Pattern)
				for _, op := range []logical.Operation{logical.CreateOperation, logical.UpdateOperation} {
					req := &logical.Request{Operation: op, Path: path, Storage: env.storage, MountPoint: "sms/",
						Data: map[string]any{field: value}}
					_, _, err := env.b.HandleExistenceCheck(context.Background(), req)
					if err != nil {
						require.NotContains(t, err.Error(), marker, "existence check of %s %s=%s", path, field, shapeName)
					}
					resp, err := env.b.HandleRequest(context.Background(), req)
					status, msg := vaultStatus(req, resp, err)
					require.NotContains(t, msg, marker, "%s %s=%s", path, field, shapeName)
					if resp != nil {
						require.NotContains(t, fmt.Sprint(resp.Data, resp.Warnings), marker, "%s %s=%s", path, field, shapeName)
					}
					if field != "task_id" && p.Fields[field].Type != 0 && status != http.StatusNoContent && status != http.StatusOK {
						require.Contains(t, msg, field, "the 400 names the field")
					}
				}
			}
		}
	}
	require.NotContains(t, env.logs.String(), marker)
}

// samplePath turns a path pattern into a concrete path that matches it.
func samplePath(pattern string) string {
	p := strings.TrimSuffix(strings.TrimPrefix(pattern, "^"), "$")
	if i := strings.Index(p, "(?P<"); i >= 0 {
		return p[:i] + "sample-0001"
	}
	return p
}

// Defect 3: whoever may update the config cannot send the stored credentials
// to another host, or use a stored password for another user: a write that
// changes endpoint, region, ca_cert, or (for the password method)
// iam_endpoint, username or domain_name must re-supply the method's secrets
// in the same write.
func TestChangingWhereCredentialsGoRequiresTheSecretsAgain(t *testing.T) {
	sink := smsfake.NewSink()
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()

	methods := map[string]struct {
		configure func(env *testEnv)
		secrets   map[string]any
		guarded   []string // the changes below that need the secrets
	}{
		"token": {func(env *testEnv) { env.configure(nil) }, map[string]any{"token": testToken},
			[]string{"endpoint", "region", "ca_cert"}},
		"access_key": {func(env *testEnv) {
			env.configure(map[string]any{"token": "", "access_key": testAccessKey, "secret_key": testSecretKey})
		}, map[string]any{"secret_key": testSecretKey}, []string{"endpoint", "region", "ca_cert", "iam_endpoint"}},
		"password": {func(env *testEnv) { env.configurePassword(map[string]any{"cache_ttl": 300}) }, map[string]any{"password": testPassword},
			[]string{"endpoint", "region", "ca_cert", "iam_endpoint", "username", "domain_name"}},
	}
	changes := map[string]map[string]any{
		"endpoint":     {"endpoint": sinkSrv.URL},
		"region":       {"endpoint": "", "region": "ap-southeast-3"},
		"iam_endpoint": {"iam_endpoint": sinkSrv.URL},
		"ca_cert":      {"ca_cert": testCACertPEM(t)},
		"username":     {"username": "admin"},
		"domain_name":  {"domain_name": "another-account"},
	}
	for method, m := range methods {
		for field, change := range changes {
			if (field == "username" || field == "domain_name") && method != "password" {
				continue
			}
			t.Run(method+"/"+field, func(t *testing.T) {
				env := newTestEnv(t)
				m.configure(env)
				before, _, _ := env.read("config")

				status, msg := env.write("config", change)
				if !slices.Contains(m.guarded, field) {
					// IAM is not used by this method: nothing is sent there.
					require.Equal(t, http.StatusNoContent, status, msg)
					_, status, msg = env.readPassphrase(testTask)
					require.Equal(t, http.StatusOK, status, msg)
					require.Empty(t, sink.Received())
					return
				}
				require.Equal(t, http.StatusBadRequest, status, msg)
				require.Contains(t, msg, field)
				for name := range m.secrets {
					require.Contains(t, msg, name, "the 400 names the secret to supply")
				}
				after, _, _ := env.read("config")
				require.Equal(t, before.Data, after.Data, "the stored config is unchanged")

				_, status, msg = env.readPassphrase(testTask)
				require.Equal(t, http.StatusOK, status, msg)
				require.Empty(t, sink.Received(), "nothing reached the other host")
				require.Zero(t, env.fake.Stats().IAMLoginFailures, "no login for another user")

				// With the secrets in the same write, the change is accepted.
				status, msg = env.write("config", mergeMaps(change, m.secrets))
				require.Equal(t, http.StatusNoContent, status, msg)
			})
		}
	}
}

// Writing the same destination another way is not a change.
func TestEquivalentEndpointsNeedNoSecrets(t *testing.T) {
	env := newTestEnv(t)
	status, msg := env.write("config", map[string]any{"region": "ap-southeast-3", "token": testToken})
	require.Equal(t, http.StatusNoContent, status, msg)
	for _, endpoint := range []string{"https://sms.ap-southeast-3.myhuaweicloud.com", "https://SMS.ap-southeast-3.myhuaweicloud.com:443/",
		"HTTPS://sms.ap-southeast-3.myhuaweicloud.com/"} {
		status, msg = env.write("config", map[string]any{"endpoint": endpoint, "region": ""})
		require.Equal(t, http.StatusNoContent, status, "%s: %s", endpoint, msg)
	}
	status, msg = env.write("config", map[string]any{"endpoint": "https://sms.ap-southeast-3.myhuaweicloud.com:8443"})
	require.Equal(t, http.StatusBadRequest, status, "another port is another host: %s", msg)
}

// Secrets too short to be told apart from ordinary text cannot be redacted
// from it: the config refuses them.
func TestSecretsTooShortToRedactAreRefused(t *testing.T) {
	env := newTestEnv(t)
	for _, data := range []map[string]any{
		{"endpoint": env.srv.URL, "token": "short12"},
		{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": "sk-1234"},
		{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey, "security_token": "st-1"},
		{"endpoint": env.srv.URL, "iam_endpoint": env.srv.URL, "username": testUser, "password": "pw1", "domain_name": testDomain},
	} {
		status, msg := env.write("config", data)
		require.Equal(t, http.StatusBadRequest, status, msg)
	}
	status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "iam_endpoint": env.srv.URL,
		"username": testUser, "password": "pw-123", "domain_name": testDomain})
	require.Equal(t, http.StatusNoContent, status, "Huawei's own minimum of 6 is enough for a password: %s", msg)
}

// Defect 4: when IAM fails near the end of a token's life, the current token
// is used until it really expires (less a clock-skew margin), and renewal is
// tried again on later reads.
func TestIAMOutageNearTheEndOfATokensLifeKeepsReadsWorking(t *testing.T) {
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.TokenLifetime = 40 * time.Second })
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	// Renewal is due from 36 s (a tenth of the lifetime before expiry); IAM
	// fails from 37 s on.
	env.clock.Advance(37 * time.Second)
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Status: 503}))
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, "the token is still valid: %s", msg)
	require.Eventually(t, func() bool { return env.fake.Stats().IAMTokenRequests >= 2 }, 5*time.Second, 5*time.Millisecond,
		"a renewal was attempted")

	// Past expiry less the skew margin (min(30s, 40s/20) = 2 s), no token is
	// valid: the read fails with IAM's error.
	env.clock.Advance(2 * time.Second)
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, "IAM")
	require.Zero(t, env.fake.Stats().Rejected, "no request ever carried an expired token")

	// IAM is back: the next read gets a token.
	env.fake.ClearFaults()
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
}

// Defect 5: a wrong IAM password is remembered, so that reads cannot drive
// the IAM user into Huawei's login lockout; a config write clears it.
func TestWrongIAMPasswordIsRememberedAndCannotLockTheUserOut(t *testing.T) {
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.LockoutAfter = 5 })
	env.configurePassword(map[string]any{"password": "pw-wrong-1234567890"})
	for i := 0; i < 10; i++ {
		_, status, msg := env.readPassphrase(testTask)
		require.Equal(t, http.StatusBadGateway, status, msg)
		require.Contains(t, msg, "IAM")
		assertNoSecrets(t, msg, "pw-wrong-1234567890")
	}
	require.EqualValues(t, 1, env.fake.Stats().IAMTokenRequests, "ten reads, one failed login")
	require.Equal(t, 1, strings.Count(env.logs.String(), "[ERROR]"), "logged once per backoff, not per read")

	// After the backoff, one more attempt, not more.
	env.clock.Advance(31 * time.Second)
	for i := 0; i < 3; i++ {
		env.readPassphrase(testTask)
	}
	require.EqualValues(t, 2, env.fake.Stats().IAMTokenRequests)

	// The operator fixes the password: it works at once, and the user was
	// never locked.
	env.configurePassword(nil)
	resp, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, testPassphrase, resp.Data["passphrase"])
}

// Defect 6: every credential the engine sent or holds is redacted before any
// truncation, and so are long fragments of it, whoever quotes it back.
func TestCredentialsQuotedBackAreRedactedWholeAndInPieces(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(env *testEnv)
		prefix int
	}{
		{"4 KB IAM token, whole", func(env *testEnv) { env.configurePassword(nil) }, 0},
		{"4 KB IAM token, first 200 characters", func(env *testEnv) { env.configurePassword(nil) }, 200},
		{"static token", func(env *testEnv) { env.configure(nil) }, 0},
		{"AK/SK signature and security token", func(env *testEnv) {
			env.configure(map[string]any{"token": "", "access_key": testAccessKey, "secret_key": testSecretKey,
				"security_token": testSecurityTok})
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnvWith(t, func(o *smsfake.Options) { o.SecurityTokens = map[string]string{testAccessKey: testSecurityTok} })
			tc.setup(env)
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultEchoCredentials, Status: 401, EchoPrefix: tc.prefix}))
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
			env.requireContains(msg, "<redacted>")
			assertNoSecrets(t, msg)
			logs := env.logs.String()
			for _, tok := range env.fake.IssuedTokens() {
				assertNoFragment(t, "the message", msg, tok)
				assertNoFragment(t, "the log", logs, tok)
			}
			for _, s := range []string{testToken, testSecurityTok} {
				assertNoFragment(t, "the message", msg, s)
				assertNoFragment(t, "the log", logs, s)
			}
			// The signature is a credential too: it proves the secret key.
			sig := regexp.MustCompile(`Signature=[0-9a-f]{12}`)
			require.False(t, sig.MatchString(msg), "no signature in the message")
			require.False(t, sig.MatchString(logs), "no signature in the log")
		})
	}
}

// Defect 7: a read that starts after `vault delete sms/passphrase/<id>` (or
// a flush, or a config change) is answered by an upstream request that
// started after it, even while a fetch begun before is still in flight.
func TestEvictionBeatsAFetchInFlight(t *testing.T) {
	for name, evict := range map[string]func(env *testEnv){
		"delete passphrase": func(env *testEnv) { env.del("passphrase/" + testTask) },
		"delete cache":      func(env *testEnv) { env.del("cache") },
		"config write":      func(env *testEnv) { env.configure(map[string]any{"request_timeout": "9s"}) },
	} {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t)
			env.configure(nil)
			// The in-flight answer is computed (old passphrase) and then held
			// until the test lets it go.
			require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200,
				Body: smsfake.BodyHold, Times: 1}))
			var wg sync.WaitGroup
			wg.Add(1)
			var first string
			go func() {
				defer wg.Done()
				resp, _, _ := env.readPassphrase(testTask)
				if resp != nil {
					first, _ = resp.Data["passphrase"].(string)
				}
			}()
			require.Eventually(t, func() bool { return env.fake.Stats().Requests == 1 }, 5*time.Second, time.Millisecond)

			env.fake.SetTask(testTask, "rotated-passphrase")
			evict(env)
			resp, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, "rotated-passphrase", resp.Data["passphrase"], "a read after the eviction must not join the older fetch")
			env.fake.Release()
			wg.Wait()
			require.Equal(t, testPassphrase, first, "the read in flight still gets its own answer")
			require.EqualValues(t, 2, env.fake.Stats().Requests)

			// The older answer was not stored over the newer one.
			resp, _, _ = env.readPassphrase(testTask)
			require.Equal(t, "rotated-passphrase", resp.Data["passphrase"])
			require.EqualValues(t, 2, env.fake.Stats().Requests)
		})
	}
}

func TestEndpointPortMustBeInRange(t *testing.T) {
	env := newTestEnv(t)
	for _, endpoint := range []string{"https://h:99999", "https://h:0", "https://h:-1", "https://h:65536", "https://h:x"} {
		status, msg := env.write("config", map[string]any{"endpoint": endpoint, "token": testToken})
		require.Equal(t, http.StatusBadRequest, status, endpoint)
		require.Contains(t, msg, "endpoint", endpoint)
	}
	status, msg := env.write("config", map[string]any{"endpoint": "https://h:65535", "token": testToken})
	require.Equal(t, http.StatusNoContent, status, msg)
}

// Defect 5, during renewal: a refusal met by a background renewal (a valid
// token still held) holds back further logins for the backoff too.
func TestRefusalDuringRenewalHoldsLoginsBack(t *testing.T) {
	env := newTestEnvWith(t, func(o *smsfake.Options) { o.TokenLifetime = time.Hour })
	env.configurePassword(map[string]any{"max_retries": 0})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	// The password was changed in IAM: every login is now refused.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Status: 401}))
	env.clock.Advance(54*time.Minute + time.Second) // renewal window: 6 minutes before expiry
	for i := 0; i < 6; i++ {                        // 6 reads over 36 s: inside the first two backoffs
		_, status, msg = env.readPassphrase(testTask)
		require.Equal(t, http.StatusOK, status, "the token is still valid: %s", msg)
		require.Eventually(t, func() bool { return !env.b.conn.Load().client.Renewing() }, 5*time.Second, time.Millisecond)
		env.clock.Advance(6 * time.Second)
	}
	require.EqualValues(t, 2, env.fake.Stats().IAMTokenRequests-1, "one failed login per backoff (30 s, then 60 s), no more")
	require.Equal(t, 2, strings.Count(env.logs.String(), "[ERROR]"), "one error line per backoff")
}

// Defect 6, transport errors: net/http's own errors quote what the upstream
// sent (here a status line built from the request's credentials); they are
// redacted of the request's credentials before they reach a log or a reader.
func TestTransportErrorsQuotingCredentialsAreRedacted(t *testing.T) {
	for _, method := range []string{"token", "access_key"} {
		t.Run(method, func(t *testing.T) {
			env := newTestEnv(t)
			var mu sync.Mutex
			var echoed []string
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func(c net.Conn) {
						defer c.Close()
						r, err := http.ReadRequest(bufio.NewReader(c))
						if err != nil {
							return
						}
						cred := r.Header.Get("X-Auth-Token")
						if cred == "" {
							_, cred, _ = strings.Cut(r.Header.Get("Authorization"), "Signature=")
						}
						mu.Lock()
						echoed = append(echoed, cred)
						mu.Unlock()
						_, _ = fmt.Fprintf(c, "HTTP/1.1 %s\r\n\r\n", cred)
					}(c)
				}
			}()
			cfg := map[string]any{"endpoint": "http://" + ln.Addr().String(), "max_retries": 0}
			if method == "access_key" {
				cfg["token"], cfg["access_key"], cfg["secret_key"] = "", testAccessKey, testSecretKey
			}
			env.configure(cfg)
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(t, http.StatusBadGateway, status)
			env.requireContains(msg, "malformed HTTP status code")
			env.requireContains(msg, "<redacted>")
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, echoed)
			for _, text := range []string{msg, env.logs.String()} {
				for _, cred := range echoed {
					assertNoFragment(t, "the message or the log", text, cred)
				}
			}
		})
	}
}
