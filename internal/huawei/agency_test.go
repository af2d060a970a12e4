package huawei

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

var teamA = Agency{Name: teamAgency, DomainName: agencyDomain, Duration: time.Hour, SessionUser: teamSession}

// readAll makes each of the four SMS calls once.
func readAll(t *testing.T, c *Client) {
	t.Helper()
	ctx := context.Background()
	p, err := c.Passphrase(ctx, fedTask)
	require.NoError(t, err)
	require.Equal(t, fedPass, p)
	task, err := c.Task(ctx, fedTask)
	require.NoError(t, err)
	require.Equal(t, fedTask, task.ID)
	page, err := c.ListTasks(ctx, ListOptions{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 1, page.Count)
	_, err = c.CertKey(ctx, fedTask, false)
	require.NoError(t, err)
}

func TestAgencyClientMakesEverySMSCallWithTheAgencysCredentials(t *testing.T) {
	for _, method := range []string{MethodAccessKey, MethodPassword, MethodIDToken} {
		t.Run(method, func(t *testing.T) {
			e := newFedEnv(t, nil)
			var requests atomic.Uint64
			c := e.client(method, func(o *Options) { o.SMSRequests = &requests })
			d := c.WithAgency(teamA)
			readAll(t, d)
			require.EqualValues(t, 1, e.assumes())
			calls := e.fake.Calls()
			require.Len(t, calls, 4)
			for _, call := range calls {
				require.Equal(t, "agency", call.Kind, "%+v", call)
				require.Equal(t, agencyDomain, call.Domain)
				require.Equal(t, teamAgency, call.Name)
				require.Equal(t, teamSession, call.Session)
				require.Equal(t, http.StatusOK, call.Status)
			}
			require.EqualValues(t, 4, requests.Load(), "the request counter is the mount's")

			// The client it was made from still reads as itself.
			e.fake.ClearCalls()
			require.NoError(t, e.read(c))
			require.NotEqual(t, "agency", e.fake.Calls()[0].Kind)
			require.EqualValues(t, 1, e.assumes())
		})
	}
}

func TestAgencyByDomainIDIsAssumed(t *testing.T) {
	e := newFedEnv(t, nil)
	a := teamA
	a.DomainName, a.DomainID = "", smsfake.DomainID(agencyDomain)
	d := e.client(MethodAccessKey, nil).WithAgency(a)
	require.NoError(t, e.read(d))
	require.Equal(t, teamAgency, e.fake.Calls()[0].Name)
}

func TestAgencyConcurrentReadersShareOneAssumeRole(t *testing.T) {
	e := newFedEnv(t, nil)
	d := e.client(MethodPassword, nil).WithAgency(teamA)
	concurrently(t, 20, func() error {
		_, err := d.Passphrase(context.Background(), fedTask)
		return err
	})
	require.EqualValues(t, 1, e.assumes())
	require.EqualValues(t, 1, e.fake.Stats().IAMTokenRequests, "one login of the parent too")
}

func TestAgencyCredentialsAreRenewedAheadOfExpiry(t *testing.T) {
	e := newFedEnv(t, nil)
	d := e.client(MethodAccessKey, nil).WithAgency(teamA)
	require.NoError(t, e.read(d))
	e.clock.Add(50 * time.Minute)
	require.NoError(t, e.read(d))
	require.EqualValues(t, 1, e.assumes(), "not due yet")

	// Due from a tenth of the lifetime before expires_at; meanwhile an IAM
	// outage leaves the current credentials in use.
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "security-token", Status: 503, Times: 1}))
	e.clock.Add(5 * time.Minute)
	require.NoError(t, e.read(d))
	e.waitRenewed(d)
	require.EqualValues(t, 2, e.assumes())
	require.Contains(t, e.logs.String(), "agency credentials renewal failed")
	e.clock.Add(renewalRetryInterval)
	require.NoError(t, e.read(d))
	e.waitRenewed(d)
	require.EqualValues(t, 3, e.assumes())

	// Past the first credentials' expiry, the renewed ones serve.
	e.clock.Add(10 * time.Minute)
	require.NoError(t, e.read(d))
	require.EqualValues(t, 3, e.assumes())
	require.Zero(t, e.fake.Stats().Rejected)
}

func TestAgencyCredentialsRejectedBySMSAreReplacedOnce(t *testing.T) {
	e := newFedEnv(t, nil)
	d := e.client(MethodIDToken, nil).WithAgency(teamA)
	require.NoError(t, e.read(d))
	e.fake.ExpireTemporaryKeys()
	require.NoError(t, e.read(d))
	require.EqualValues(t, 2, e.assumes())
	calls := e.fake.Calls()
	require.Len(t, calls, 3)
	require.Equal(t, http.StatusUnauthorized, calls[1].Status)
	require.Equal(t, http.StatusOK, calls[2].Status)
	require.Equal(t, teamSession, calls[2].Session)
}

func TestAgencySMSRefusalKeepsTheCredentials(t *testing.T) {
	e := newFedEnv(t, func(o *smsfake.Options) {
		o.Agencies[0].Permissions = &smsfake.Permissions{Actions: []string{"sms:server:getTask"}}
	})
	d := e.client(MethodAccessKey, nil).WithAgency(teamA)
	_, err := d.Task(context.Background(), fedTask)
	require.NoError(t, err)
	for range 3 {
		herr := asHuaweiError(t, e.read(d))
		require.Equal(t, KindRefused, herr.Kind)
		require.Equal(t, "SMS", herr.Service)
		require.Equal(t, http.StatusForbidden, herr.Status)
		require.Equal(t, "SMS.9004", herr.Code)
	}
	require.EqualValues(t, 1, e.assumes(), "a 403 is the agency's policy, not a credentials problem")
}

func TestAgencyRefusalsAreRememberedWithBackoff(t *testing.T) {
	cases := []struct {
		name   string
		tweak  func(*smsfake.Options)
		agency func(Agency) Agency
		status int
	}{
		{"no Agent Operator permission", func(o *smsfake.Options) {
			o.UserPermissions = map[string]*smsfake.Permissions{"d/alice": {Actions: []string{"sms:*:*"}}}
		}, nil, 403},
		{"unknown agency", nil, func(a Agency) Agency { a.Name = "nope"; return a }, 404},
		{"agency does not trust the account", func(o *smsfake.Options) { o.Agencies[0].Trusted = []string{"other"} }, nil, 403},
		{"duration over the agency's maximum", func(o *smsfake.Options) {
			o.Agencies[0].MaxDuration = smsfake.Duration(time.Hour)
		}, func(a Agency) Agency { a.Duration = 2 * time.Hour; return a }, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFedEnv(t, tc.tweak)
			a := teamA
			if tc.agency != nil {
				a = tc.agency(a)
			}
			d := e.client(MethodAccessKey, nil).WithAgency(a)
			herr := asHuaweiError(t, e.read(d))
			require.Equal(t, KindRefused, herr.Kind)
			require.Equal(t, "IAM", herr.Service)
			require.Equal(t, tc.status, herr.Status)
			require.Contains(t, herr.Detail, fmt.Sprintf("refused to let the engine's credential assume agency %q of account %q", a.Name, agencyDomain))
			require.NotEmpty(t, herr.Message, "IAM's reason is named")
			require.Contains(t, herr.Hint, "Agent Operator")
			require.Contains(t, herr.Error(), fmt.Sprintf("HTTP %d", tc.status))

			for range 5 {
				again := asHuaweiError(t, e.read(d))
				require.Equal(t, KindRefused, again.Kind)
				require.Contains(t, again.Detail, "remembered")
			}
			require.EqualValues(t, 1, e.assumes())
			require.Zero(t, e.fake.Stats().Requests, "SMS was not called")
			e.clock.Add(firstRefusalBackoff + time.Second)
			require.Error(t, e.read(d))
			require.EqualValues(t, 2, e.assumes())
			e.clock.Add(firstRefusalBackoff + time.Second)
			require.Error(t, e.read(d))
			require.EqualValues(t, 2, e.assumes(), "the backoff doubles")
			require.Equal(t, 2, strings.Count(e.logs.String(), "IAM refused to let the engine assume an agency"), "one error line per refusal")
		})
	}
}

func TestAgencyIAMFailuresAreNotRemembered(t *testing.T) {
	e := newFedEnv(t, nil)
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "security-token", Status: 500, Times: 1}))
	d := e.client(MethodAccessKey, func(o *Options) { o.MaxRetries = 0 }).WithAgency(teamA)
	herr := asHuaweiError(t, e.read(d))
	require.Equal(t, KindServer, herr.Kind)
	require.Equal(t, "IAM failed to issue the agency's temporary credentials", herr.Service+" "+herr.Detail)
	require.NoError(t, e.read(d))
	require.EqualValues(t, 2, e.assumes())
}

func TestAgencyParentLoginFailureIsReturned(t *testing.T) {
	e := newFedEnv(t, nil)
	d := e.client(MethodPassword, func(o *Options) { o.Password = "Wrong-pass-0123456789" }).WithAgency(teamA)
	herr := asHuaweiError(t, e.read(d))
	require.Equal(t, KindRefused, herr.Kind)
	require.Equal(t, "refused the username, password or domain_name of the engine's config", herr.Detail)
	require.Zero(t, e.assumes())
}

// IAM's answer must hold usable credentials; one that does not is a bad
// answer, and none of it is quoted.
func TestAgencyUnusableAnswersAreRefused(t *testing.T) {
	const secret = "TEMPSECRETabcdefghijklmnopqrstuvwxyz0123"
	for _, tc := range []struct {
		name, body, detail string
	}{
		{"no secret", `{"credential":{"access":"AK","securitytoken":"tok-0123456789","expires_at":"%s"}}`, "without usable temporary credentials"},
		{"a secret with a space", `{"credential":{"access":"AK","secret":"` + secret + ` x","securitytoken":"tok-0123456789","expires_at":"%s"}}`, "without usable temporary credentials"},
		{"no expires_at", `{"credential":{"access":"AK","secret":"` + secret + `","securitytoken":"tok-0123456789","expires_at":"soon%.0s"}}`, "without a valid credential.expires_at"},
		{"already expired", `{"credential":{"access":"AK","secret":"` + secret + `","securitytoken":"tok-0123456789","expires_at":"2001-01-01T00:00:00.000000%.0s"}}`, "already expired"},
		{"not JSON", `{"credential":` + secret + `%.0s`, "unreadable body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFedEnv(t, nil)
			e.echo.Store(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if r.URL.Path != "/v3.0/OS-CREDENTIAL/securitytokens" {
					return false
				}
				if strings.Contains(tc.body, `"secret":"`) {
					// IAM quoting, elsewhere in its answer, a secret it sent.
					w.Header().Set("X-Request-Id", secret)
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = fmt.Fprintf(w, tc.body, e.clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000"))
				return true
			})
			d := e.client(MethodAccessKey, nil).WithAgency(teamA)
			herr := asHuaweiError(t, e.read(d))
			require.Equal(t, KindBadResponse, herr.Kind)
			require.Contains(t, herr.Detail, tc.detail)
			requireNoPiece(t, herr.Error(), secret, "the error")
		})
	}
}

// expires_at comes with microseconds, with or without a zone.
func TestAgencyExpiresAtInEitherForm(t *testing.T) {
	for _, layout := range []string{"2006-01-02T15:04:05.000000Z", "2006-01-02T15:04:05.000000"} {
		t.Run(layout, func(t *testing.T) {
			e := newFedEnv(t, nil)
			e.echo.Store(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if r.URL.Path != "/v3.0/OS-CREDENTIAL/securitytokens" {
					return false
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = fmt.Fprintf(w, `{"credential":{"access":"AKTEMP","secret":"s-0123456789","securitytoken":"t-0123456789","expires_at":%q}}`,
					e.clock.Now().Add(2*time.Hour).UTC().Format(layout))
				return true
			})
			d := e.client(MethodAccessKey, nil).WithAgency(teamA)
			_, err := d.current(t)
			require.NoError(t, err)
			ts := d.auth.(*tokenSource)
			ts.mu.Lock()
			defer ts.mu.Unlock()
			require.Equal(t, e.clock.Now().Add(2*time.Hour-2*time.Hour/10), ts.renewAt)
		})
	}
}

// current obtains the client's credential, for tests.
func (c *Client) current(t *testing.T) (credential, error) {
	t.Helper()
	return c.auth.(*tokenSource).current(context.Background())
}

// SMS quoting the temporary secret key or security token, whole or in
// pieces, gets neither into an error or a log line.
func TestAgencyCredentialsQuotedBackBySMSAreRedacted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quote func(secrets []string) string
	}{
		{"whole", func(secrets []string) string { return strings.Join(secrets, " and ") }},
		{"in pieces", func(secrets []string) string {
			var b strings.Builder
			for _, s := range secrets {
				for i := 0; i < len(s) && i < 120; i += 9 {
					b.WriteString(s[i:min(i+9, len(s))])
					b.WriteString(" ")
				}
			}
			return b.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFedEnv(t, nil)
			var quoted atomic.Bool
			d := e.client(MethodAccessKey, nil).WithAgency(teamA)
			cred, err := d.current(t)
			require.NoError(t, err)
			secrets := []string{string(cred.secret), cred.securityToken}
			e.echo.Store(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if !strings.HasPrefix(r.URL.Path, "/v3/tasks") {
					return false
				}
				quoted.Store(true)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Request-Id", cred.securityToken[100:140])
				w.WriteHeader(http.StatusForbidden)
				_, _ = fmt.Fprintf(w, `{"error_code":"SMS.9004","error_msg":%q}`, tc.quote(secrets))
				return true
			})
			herr := asHuaweiError(t, e.read(d))
			require.True(t, quoted.Load())
			require.Equal(t, "SMS", herr.Service)
			require.Contains(t, herr.Error(), redacted)
			for _, s := range secrets {
				requireNoPiece(t, herr.Error(), s, "the error")
				requireNoPiece(t, e.logs.String(), s, "the log")
			}
		})
	}
}

func TestAgencyClientCloseStopsOnlyItsOwnWork(t *testing.T) {
	e := newFedEnv(t, nil)
	c := e.client(MethodAccessKey, nil)
	d := c.WithAgency(teamA)
	require.NoError(t, e.read(d))
	d.Close()
	// The client it came from, and its connections, still serve.
	require.NoError(t, e.read(c))
	other := c.WithAgency(teamA)
	require.NoError(t, e.read(other))
	require.EqualValues(t, 2, e.assumes(), "clients made separately share nothing")
}

// Closing the client an agency client came from stops the agency's
// renewal in flight: nothing is left running.
func TestAgencyRenewalsStopWhenTheParentCloses(t *testing.T) {
	e := newFedEnv(t, nil)
	ignore := goleak.IgnoreCurrent()
	o := e.options(MethodPassword)
	c, err := New(o)
	require.NoError(t, err)
	d := c.WithAgency(teamA)
	require.NoError(t, e.read(d))

	// The renewal hangs in IAM until the client gives up.
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Target: "iam", Call: "security-token",
		Delay: smsfake.Duration(time.Minute)}))
	e.clock.Add(55 * time.Minute)
	require.NoError(t, e.read(d))
	require.Eventually(t, func() bool { return e.assumes() == 2 }, 10*time.Second, 5*time.Millisecond)
	require.True(t, d.Renewing())

	c.Close()
	e.waitRenewed(d)
	require.EqualValues(t, 2, e.assumes())
	e.srv.Close()
	goleak.VerifyNone(t, ignore)
}

// IAM issued the credentials a renewal replaces: its refusal of the renewal
// quoting them gets them into no error or log line.
func TestAgencyRenewalRefusalQuotingTheCurrentCredentialsIsRedacted(t *testing.T) {
	e := newFedEnv(t, nil)
	d := e.client(MethodAccessKey, nil).WithAgency(teamA)
	cred, err := d.current(t)
	require.NoError(t, err)
	var refused atomic.Int32
	e.echo.Store(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path != "/v3.0/OS-CREDENTIAL/securitytokens" {
			return false
		}
		refused.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, `{"error":{"code":403,"message":"not again: %s %s","title":"Forbidden"}}`, string(cred.secret), cred.securityToken[:200])
		return true
	})
	e.clock.Add(55 * time.Minute)
	require.NoError(t, e.read(d))
	e.waitRenewed(d)
	require.EqualValues(t, 1, refused.Load())
	logs := e.logs.String()
	require.Contains(t, logs, "IAM refused to let the engine assume an agency")
	requireNoPiece(t, logs, string(cred.secret), "the log")
	requireNoPiece(t, logs, cred.securityToken[:200], "the log")
}

// Temporary credentials SMS rejects are replaced with the parent's token;
// when IAM rejects that token too, the parent gets a new one, once, and the
// read still succeeds.
func TestAgencyRenewalRenewsARevokedParentToken(t *testing.T) {
	e := newFedEnv(t, nil)
	c := e.client(MethodIDToken, func(o *Options) { o.MaxRPS = 1000 })
	d := c.WithAgency(teamA)
	require.Same(t, c.limiter, d.limiter, "max_upstream_rps is the mount's total")
	require.NoError(t, e.read(d))
	e.fake.RevokeTokens()
	e.fake.ExpireTemporaryKeys()
	require.NoError(t, e.read(d))
	require.EqualValues(t, 2, e.exchanges())
	require.EqualValues(t, 3, e.assumes(), "the first, one refused with the revoked token, the new one")
	calls := e.fake.Calls()
	require.Equal(t, http.StatusOK, calls[len(calls)-1].Status)
	require.Equal(t, teamSession, calls[len(calls)-1].Session)
}

// A read that IAM keeps waiting fails at its own deadline, saying what
// IAM did not issue.
func TestAgencyReadDeadlineWhileIAMIsSlow(t *testing.T) {
	e := newFedEnv(t, nil)
	require.NoError(t, e.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultSlowHeaders, Target: "iam", Call: "security-token",
		Delay: smsfake.Duration(time.Minute), Times: 1}))
	d := e.client(MethodAccessKey, nil).WithAgency(teamA)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := d.Passphrase(ctx, fedTask)
	herr := asHuaweiError(t, err)
	require.Equal(t, KindTimeout, herr.Kind)
	require.Equal(t, "IAM did not issue the agency's temporary credentials before the read's deadline", herr.Error())
}
