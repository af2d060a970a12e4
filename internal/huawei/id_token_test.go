package huawei

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

func TestIDTokenIsExchangedAndItsTokenReadsSMS(t *testing.T) {
	for _, scope := range []struct {
		name  string
		tweak func(*Options)
	}{
		{"domain_name", nil},
		{"domain_id", func(o *Options) { o.DomainName, o.DomainID = "", smsfake.DomainID("d") }},
		{"project_id", func(o *Options) { o.DomainName, o.ProjectID = "", "project-1" }},
		{"unscoped", func(o *Options) { o.DomainName = "" }},
	} {
		t.Run(scope.name, func(t *testing.T) {
			e := newFedEnv(t, nil)
			var seen []string
			var mu sync.Mutex
			e.echo.Store(func(_ http.ResponseWriter, r *http.Request, body []byte) bool {
				if r.URL.Path == "/v3.0/OS-AUTH/id-token/tokens" {
					mu.Lock()
					seen = append(seen, r.Header.Get("X-Idp-Id")+" "+r.Header.Get("X-Auth-Token")+r.Header.Get("Authorization")+" "+string(body))
					mu.Unlock()
				}
				return false
			})
			c := e.client(MethodIDToken, scope.tweak)
			require.NoError(t, e.read(c))
			task, err := c.Task(context.Background(), fedTask)
			require.NoError(t, err)
			require.Equal(t, fedTask, task.ID)
			require.EqualValues(t, 1, e.exchanges())
			calls := e.fake.Calls()
			require.Len(t, calls, 2)
			for _, call := range calls {
				require.Equal(t, "federated", call.Kind)
				require.Equal(t, http.StatusOK, call.Status)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, seen, 1)
			// X-Idp-Id, no credentials, the JWT and the scope asked for.
			require.True(t, strings.HasPrefix(seen[0], fedIDP+"  {"), seen[0])
			require.Contains(t, seen[0], `"id_token":{"id":"`+e.sign(nil)[:20])
			switch scope.name {
			case "domain_name":
				require.Contains(t, seen[0], `"scope":{"domain":{"name":"d"}}`)
			case "domain_id":
				require.Contains(t, seen[0], `"scope":{"domain":{"id":"`+smsfake.DomainID("d")+`"}}`)
			case "project_id":
				require.Contains(t, seen[0], `"scope":{"project":{"id":"project-1"}}`)
			default:
				require.NotContains(t, seen[0], "scope")
			}
		})
	}
}

func TestIDTokenIsReadAfreshForEveryExchange(t *testing.T) {
	e := newFedEnv(t, nil)
	// The first ID token expires before the IAM token's renewal is due.
	first := e.sign(map[string]any{"exp": e.clock.Now().Add(30 * time.Minute).Unix()})
	e.setJWT(first, nil)
	c := e.client(MethodIDToken, nil)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 1, e.jwtAsks.Load())

	// The issuer rotated the file: the renewal must send the new token, the
	// old one is expired and would be refused.
	e.clock.Add(55 * time.Minute)
	second := e.sign(nil)
	e.setJWT(second, nil)
	require.NoError(t, e.read(c))
	e.waitRenewed(c)
	require.EqualValues(t, 2, e.exchanges())
	require.EqualValues(t, 2, e.jwtAsks.Load())
	require.Zero(t, e.fake.Stats().IAMLoginFailures, "the expired ID token was sent")
	ts := c.auth.(*tokenSource)
	ts.mu.Lock()
	require.Equal(t, second, ts.lastJWT)
	renewAt := ts.renewAt
	ts.mu.Unlock()
	require.True(t, renewAt.After(e.clock.Now()), "the renewed token is not due for renewal")

	// Past the first token's expiry, reads go on with the renewed one.
	e.clock.Add(10 * time.Minute)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.exchanges())
}

func TestIDTokenConcurrentReadersShareOneExchange(t *testing.T) {
	e := newFedEnv(t, nil)
	c := e.client(MethodIDToken, nil)
	concurrently(t, 20, func() error {
		_, err := c.Passphrase(context.Background(), fedTask)
		return err
	})
	require.EqualValues(t, 1, e.exchanges())
	require.EqualValues(t, 1, e.jwtAsks.Load())
}

func TestIDTokenOutageNearExpiryIsSurvived(t *testing.T) {
	e := newFedEnv(t, nil)
	c := e.client(MethodIDToken, nil)
	require.NoError(t, e.read(c))

	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "id-token", Status: 503}))
	e.clock.Add(55 * time.Minute)
	require.NoError(t, e.read(c), "the current token is still usable")
	e.waitRenewed(c)
	require.EqualValues(t, 2, e.exchanges())
	require.Contains(t, e.logs.String(), "IAM token renewal failed; the current one stays in use until it expires")

	// A failure of IAM is not a refusal: once the retry interval passes,
	// the next read tries again, and IAM, back, renews.
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.exchanges(), "no renewal before the retry interval")
	e.fake.ClearFaults()
	e.clock.Add(renewalRetryInterval)
	require.NoError(t, e.read(c))
	e.waitRenewed(c)
	require.EqualValues(t, 3, e.exchanges())
	e.clock.Add(10 * time.Minute)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 3, e.exchanges())
}

func TestIDTokenRefusalsAreRememberedWithBackoff(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	cases := []struct {
		name   string
		idp    string
		jwt    func(e *fedEnv) string
		status int
	}{
		{"unknown identity provider", "nope", func(e *fedEnv) string { return e.sign(nil) }, 404},
		{"signed by another key", fedIDP, func(e *fedEnv) string { return e.signWith(other, nil) }, 401},
		{"expired", fedIDP, func(e *fedEnv) string {
			return e.sign(map[string]any{"exp": e.clock.Now().Add(-time.Minute).Unix()})
		}, 401},
		{"not yet valid", fedIDP, func(e *fedEnv) string {
			return e.sign(map[string]any{"nbf": e.clock.Now().Add(time.Hour).Unix()})
		}, 401},
		{"wrong audience", fedIDP, func(e *fedEnv) string { return e.sign(map[string]any{"aud": "someone-else"}) }, 401},
		{"no mapping rule matches", fedIDP, func(e *fedEnv) string { return e.sign(map[string]any{"sub": "intruder"}) }, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFedEnv(t, func(o *smsfake.Options) { o.IdentityProviders[0].Subjects = []string{fedSubject} })
			jwt := tc.jwt(e)
			e.setJWT(jwt, nil)
			c := e.client(MethodIDToken, func(o *Options) { o.IDPID = tc.idp })

			herr := asHuaweiError(t, e.read(c))
			require.Equal(t, KindRefused, herr.Kind)
			require.Equal(t, "IAM", herr.Service)
			require.Equal(t, tc.status, herr.Status)
			require.Contains(t, herr.Detail, fmt.Sprintf("refused the ID token (identity provider idp_id %q)", tc.idp))
			require.NotEmpty(t, herr.Message, "IAM's reason is named")
			require.Contains(t, herr.Error(), fmt.Sprintf("HTTP %d", tc.status))
			requireNoPiece(t, herr.Error(), jwt, "the error")

			// Reads fail at once with the refusal, without a storm of exchanges.
			for range 5 {
				again := asHuaweiError(t, e.read(c))
				require.Equal(t, KindRefused, again.Kind)
				require.Contains(t, again.Detail, "remembered")
			}
			require.EqualValues(t, 1, e.exchanges())
			e.clock.Add(firstRefusalBackoff + time.Second)
			require.Error(t, e.read(c))
			require.EqualValues(t, 2, e.exchanges())
			// The backoff doubles.
			e.clock.Add(firstRefusalBackoff + time.Second)
			require.Error(t, e.read(c))
			require.EqualValues(t, 2, e.exchanges())
			e.clock.Add(firstRefusalBackoff)
			require.Error(t, e.read(c))
			require.EqualValues(t, 3, e.exchanges())
			requireNoPiece(t, e.logs.String(), jwt, "the log")
		})
	}
}

func TestIDTokenServerErrorsAreNotRemembered(t *testing.T) {
	e := newFedEnv(t, nil)
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "id-token", Status: 503, Times: 1}))
	c := e.client(MethodIDToken, nil)
	herr := asHuaweiError(t, e.read(c))
	require.Equal(t, KindServer, herr.Kind)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.exchanges())
}

func TestIDTokenSMS401MakesOneNewExchange(t *testing.T) {
	e := newFedEnv(t, nil)
	c := e.client(MethodIDToken, nil)
	require.NoError(t, e.read(c))
	e.fake.RevokeTokens()
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.exchanges())
	require.EqualValues(t, 2, e.jwtAsks.Load())
	require.EqualValues(t, 1, e.fake.Stats().Rejected)

	// A token SMS keeps refusing costs one exchange per read, not a loop.
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Call: "passphrase", Status: 401}))
	herr := asHuaweiError(t, e.read(c))
	require.Equal(t, KindRefused, herr.Kind)
	require.Equal(t, "SMS", herr.Service)
	require.EqualValues(t, 3, e.exchanges())
}

func TestIDTokenFuncErrorMakesNoIAMCall(t *testing.T) {
	e := newFedEnv(t, nil)
	e.setJWT("", errors.New("SMS_ID_TOKEN_FILE could not be read"))
	c := e.client(MethodIDToken, nil)
	herr := asHuaweiError(t, e.read(c))
	require.Equal(t, KindRefused, herr.Kind)
	require.Equal(t, "IAM", herr.Service)
	require.Equal(t, "was not asked for a token: SMS_ID_TOKEN_FILE could not be read", herr.Detail)
	require.Zero(t, e.exchanges())
	// Not remembered: the next read asks for the ID token again.
	e.setJWT(e.sign(nil), nil)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.jwtAsks.Load())
	require.EqualValues(t, 1, e.exchanges())
}

// An IAM that quotes the ID token back, whole or in pieces, in an error or
// alongside a failure, must not get it into an error or a log line.
func TestIDTokenQuotedBackByIAMIsRedacted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		quote  func(jwt string) string
	}{
		{"whole in a refusal", 401, func(jwt string) string { return "The ID token " + jwt + " is refused." }},
		{"in pieces in a refusal", 403, func(jwt string) string {
			var b strings.Builder
			for i := 0; i < len(jwt); i += 12 {
				b.WriteString(jwt[i:min(i+12, len(jwt))])
				b.WriteString(" | ")
			}
			return b.String()
		}},
		{"cut short in a failure", 500, func(jwt string) string { return "bad token " + jwt[:40] }},
		{"upper-cased", 400, func(jwt string) string { return strings.ToUpper(jwt) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFedEnv(t, nil)
			jwt := e.sign(nil)
			e.setJWT(jwt, nil)
			e.echo.Store(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				if r.URL.Path != "/v3.0/OS-AUTH/id-token/tokens" {
					return false
				}
				require.Contains(t, string(body), jwt)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Request-Id", jwt[len(jwt)-30:])
				w.WriteHeader(tc.status)
				_, _ = fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"title":"x"}}`, tc.status, tc.quote(jwt))
				return true
			})
			c := e.client(MethodIDToken, func(o *Options) { o.MaxRetries = 0 })
			herr := asHuaweiError(t, e.read(c))
			require.Equal(t, "IAM", herr.Service)
			requireNoPiece(t, herr.Error(), jwt, "the error")
			requireNoPiece(t, strings.ToLower(herr.Error()), strings.ToLower(jwt), "the error, lower-cased")
			require.Contains(t, herr.Error(), redacted)
			// The remembered refusal too.
			if tc.status < 500 {
				requireNoPiece(t, e.read(c).Error(), jwt, "the remembered error")
			}
			requireNoPiece(t, e.logs.String(), jwt, "the log")
		})
	}
}

func TestIDTokenMethodNeedsAnIDTokenAndIAM(t *testing.T) {
	_, err := New(Options{Endpoint: "https://sms.example.test", Method: MethodIDToken, IDPID: "x",
		IDToken: func(context.Context) (Secret, error) { return "", nil }})
	require.Error(t, err)
	_, err = New(Options{Endpoint: "https://sms.example.test", IAMEndpoint: "https://iam.example.test", Method: MethodIDToken, IDPID: "x"})
	require.Error(t, err)
}

func TestIDTokenThatIsNotACompactJWSIsNotSent(t *testing.T) {
	for _, jwt := range []string{"", "a.b", "a.b.c.d", "a.b c.d", strings.Repeat("a", maxIDTokenLength) + ".b.c"} {
		e := newFedEnv(t, nil)
		e.setJWT(jwt, nil)
		c := e.client(MethodIDToken, nil)
		herr := asHuaweiError(t, e.read(c))
		require.Equal(t, KindRefused, herr.Kind)
		require.Equal(t, "was not asked for a token: the ID token is empty or not a compact JWS", herr.Detail)
		require.Zero(t, e.exchanges())
	}
}

// The refusal remembered is of one ID token: a new one (the kubelet rotated
// the file after IAM refused an expired token) is exchanged at once, not
// after the backoff; the same one is not sent again.
func TestIDTokenRotatedAfterARefusalIsExchangedAtOnce(t *testing.T) {
	e := newFedEnv(t, nil)
	expired := e.sign(map[string]any{"exp": e.clock.Now().Add(-time.Minute).Unix()})
	e.setJWT(expired, nil)
	c := e.client(MethodIDToken, nil)
	require.Error(t, e.read(c))
	for range 3 {
		require.Contains(t, asHuaweiError(t, e.read(c)).Detail, "remembered")
	}
	require.EqualValues(t, 1, e.exchanges(), "the refused token is not sent again")

	e.setJWT(e.sign(nil), nil)
	require.NoError(t, e.read(c))
	require.EqualValues(t, 2, e.exchanges())
	requireNoPiece(t, e.logs.String(), expired, "the log")
}
