package sms

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// A 201 to CreateAccessKey whose body cannot be read (cut short, oversized,
// or a gateway's body in place of IAM's) is an answer that says IAM created
// the key: the engine must not drop the write-ahead log entry and report
// "no key was created". Otherwise the key is an orphan that no rollback
// looks for, and the next rotate-root fails with "already has 2 access keys".
func TestAttackCreatedKeyWithAnUnreadableAnswerIsNotOrphaned(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault smsfake.Fault
	}{
		{"201 cut short", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 201, Body: smsfake.BodyShortLength}},
		{"201 oversized", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 201, Body: smsfake.BodyHuge, Size: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newRotationEnv(t, nil)
			env.configureAccessKey(map[string]any{"max_retries": 0, "request_timeout": 5})
			f := tc.fault
			f.Target, f.Call, f.Times = "iam", "create-key", 1
			require.NoError(t, env.fake.AddFault(f))
			_, status, msg := env.rotate()
			t.Logf("rotate: %d %s", status, msg)
			// IAM created the key behind the unreadable answer: the rotation
			// must say it may exist (its immediate look may delete it already).
			require.Contains(t, msg, "MAY have been created")

			env.clock.Advance(walRollbackMinAge)
			settleRollback(t, env)
			cfg, err := loadConfig(context.Background(), env.storage)
			require.NoError(t, err)
			var keys []string
			for _, k := range env.keys() {
				keys = append(keys, k.Access)
			}
			require.Equal(t, []string{cfg.AccessKey}, keys, "the key IAM created is an orphan; the rotation said: %s", msg)
			_, status, msg = env.rotate()
			require.Equal(t, http.StatusOK, status, msg)
		})
	}
}

// iamCutter stands between the engine and the stand-in's IAM: a login whose
// body holds the password set with cut gets no answer (the connection is
// closed), as on a network that drops it.
type iamCutter struct {
	srv *httptest.Server
	cut atomic.Value // string
}

func newIAMCutter(t *testing.T, env *testEnv) *iamCutter {
	t.Helper()
	target, err := url.Parse(env.srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	c := &iamCutter{}
	c.cut.Store("")
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if pw := c.cut.Load().(string); pw != "" && strings.HasSuffix(r.URL.Path, "/auth/tokens") && bytes.Contains(body, []byte(pw)) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// After a settle's login with the stored password was refused (and its login
// with the new one got no answer), a config write that supplies the same
// stored password again (a Terraform apply, a script that writes the whole
// config) makes the next settle log in with the refused password once more:
// two failed logins with no success between, and the stand-in (lockout after
// two) locks the user out. The refusal is remembered by CredentialsSetAt,
// not by which password was refused.
func TestAttackRewritingTheSamePasswordRepeatsARefusedLogin(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) { o.LockoutAfter = 2 })
	cutter := newIAMCutter(t, env)
	env.configurePassword(map[string]any{"iam_endpoint": cutter.srv.URL, "max_retries": 0, "request_timeout": 2})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)

	// IAM applies the change behind a 504: unsettled.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "change-password", Status: 504, Times: 1}))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	newPw := env.fake.Password(testDomain, testUser)
	require.NotEqual(t, testPassword, newPw)

	// The settle: the stored password is refused (one failed login), the
	// login with the new one gets no answer.
	cutter.cut.Store(newPw)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	require.EqualValues(t, 1, env.fake.Stats().IAMLoginFailures)
	require.Equal(t, 1, walCount(t, env), "still unsettled")

	// The same config written again, password included.
	status, msg = env.write("config", map[string]any{"password": testPassword, "iam_endpoint": cutter.srv.URL})
	require.Equal(t, http.StatusNoContent, status, msg)
	cutter.cut.Store("")
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	settleRollback(t, env)

	require.Zero(t, env.fake.Stats().IAMLockouts, "the refused password was tried again: %d failed logins in a row",
		env.fake.Stats().IAMLoginFailures)
}

// Once IAM has refused both the stored password and the rotation's new one
// (stuck), a config write of a password that IAM also refuses (a typo) makes
// the next settle log in with the typo and then with the rotation's new
// password again, which IAM refused already: two more failed logins in a
// row for each mistaken write, four in a row after the first. The README
// promises that settling never makes two failed logins in a row, and that
// when both are refused a person writes the current password. At most the
// written password should be tried.
func TestAttackAStuckSettleRetriesTheRefusedNewPasswordAfterEachWrite(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0, "request_timeout": 2})
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	// Reset before IAM sees it; meanwhile an administrator changes the
	// password in IAM.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultResetBeforeHeaders, Target: "iam", Call: "change-password", Times: 1}))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	env.fake.AddUser(smsfake.User{Domain: testDomain, Name: testUser, Password: "Admin-set-pw-0123456789"})
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	cfg, _, _ := env.read("config")
	require.Contains(t, cfg.Data["rotation_unsettled_detail"], "refused both")
	stuck := env.fake.Stats().IAMLoginFailures
	t.Logf("failed logins to get stuck: %d", stuck)

	status, msg = env.write("config", map[string]any{"password": "Admin-set-pw-0123456780"}) // one digit off
	require.Equal(t, http.StatusNoContent, status, msg)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	require.LessOrEqual(t, env.fake.Stats().IAMLoginFailures-stuck, int64(1),
		"a mistaken write cost more than the one failed login of the written password")
}

// Deleting the config while a password rotation is unsettled (an operator's
// first reflex to "reset" a mount that answers 503) makes the rollback drop
// the log entry, and with it the only copy of the password IAM now has.
// Writing the config back with the password the operator knows then cannot
// work: the engine logs in with a password IAM no longer takes, and only an
// IAM administrator can recover. The README does not warn of this.
func TestAttackDeletingTheConfigWhileUnsettledLosesTheNewPassword(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"max_retries": 0, "request_timeout": 2})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "change-password", Status: 504, Times: 1}))
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, env.safe(msg))
	require.NotEqual(t, testPassword, env.fake.Password(testDomain, testUser), "IAM has the new password")

	status, msg = env.del("config")
	require.Equal(t, http.StatusNoContent, status, msg)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	env.configurePassword(map[string]any{"max_retries": 0, "request_timeout": 2})
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)

	stored, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.True(t, env.fake.Password(testDomain, testUser) == string(stored.Password),
		"the password IAM has was dropped with the log entry; %d write-ahead log entries left", walCount(t, env))
}

// A password that expires within 7 days is not warned of while a
// rotation_period is set, even when every scheduled rotation fails and the
// schedule is overdue: exactly when the warning matters, it is silent.
func TestAttackPasswordExpiryIsNotWarnedOfWhileTheScheduleKeepsFailing(t *testing.T) {
	env, _ := newRotationEnv(t, func(o *smsfake.Options) {
		o.Users[0].PasswordExpires = o.Now().Add(3 * 24 * time.Hour)
	})
	env.configurePassword(map[string]any{"rotation_period": "24h", "max_retries": 0})
	// IAM refuses every change (a password policy the generator does not meet).
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Target: "iam", Call: "change-password", Status: 400}))
	for i := 0; i < 2*24; i++ {
		env.clock.Advance(time.Hour)
		require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	}
	_, status, msg := env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
	cfg, _, _ := env.read("config")
	require.NotEmpty(t, cfg.Data["last_rotation_error"], "the schedule fails")
	require.NotEmpty(t, cfg.Data["password_expires_at"])
	require.NotEmpty(t, cfg.Warnings, "the password expires in a day, no rotation succeeded for a day, and nothing warns")
}

// A scheduled rotation that was unsettled and that the rollback then
// completed (IAM had the new password; it is stored) is a success, yet the
// config read still shows last_rotation_error and rotation_backoff_until,
// which the README says a successful rotation resets.
func TestAttackASettledRotationLeavesItsErrorAndBackoff(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	env.configurePassword(map[string]any{"rotation_period": "1m", "max_retries": 0})
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "change-password", Status: 504, Times: 1}))
	env.clock.Advance(time.Minute)
	require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	cfg, _, _ := env.read("config")
	require.NotEmpty(t, cfg.Data["last_rotation_error"])
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	stored, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.True(t, env.fake.Password(testDomain, testUser) == string(stored.Password), "settled: the rotation took")
	cfg, _, _ = env.read("config")
	require.Empty(t, cfg.Data["last_rotation_error"], "the rotation succeeded in the end")
	require.Empty(t, cfg.Data["rotation_backoff_until"])
}

// iamNullList stands between the engine and the stand-in's IAM and, while
// on, answers the key list with 200 {"credentials":null}: a gateway's or a
// broken IAM's answer, which the change now reads as "the user has no keys".
type iamNullList struct {
	srv *httptest.Server
	on  atomic.Bool
}

func newIAMNullList(t *testing.T, env *testEnv) *iamNullList {
	t.Helper()
	target, err := url.Parse(env.srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	p := &iamNullList{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.on.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/OS-CREDENTIAL/credentials") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"credentials":null}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// The rollback of an unsettled key creation lists the user's keys to find
// the one IAM may have created. A list that says "no keys" cannot be true:
// the configured key is the user's and works. Taking it at its word, the
// rollback drops the log entry, and the key IAM created is an orphan that
// nothing looks for again; the next rotate-root fails with "already has 2
// access keys". Before the change, such a list was an error and the entry
// stayed for the next rollback.
func TestAttackAnEmptyKeyListThatOmitsTheConfiguredKeyIsNotEvidence(t *testing.T) {
	env, _ := newRotationEnv(t, nil)
	p := newIAMNullList(t, env)
	env.configureAccessKey(map[string]any{"iam_endpoint": p.srv.URL, "max_retries": 0, "request_timeout": 1})
	// IAM creates the key behind a 504; the list is broken whenever the
	// engine looks.
	require.NoError(t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Target: "iam", Call: "create-key", Status: 504, Times: 1}))
	p.on.Store(true)
	_, status, msg := env.rotate()
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Equal(t, 2, len(env.keys()), "IAM created it")
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)
	p.on.Store(false)
	env.clock.Advance(walRollbackMinAge)
	settleRollback(t, env)

	require.Equal(t, 1, len(env.keys()), "the key IAM created is an orphan; %d log entries left", walCount(t, env))
	_, status, msg = env.rotate()
	require.Equal(t, http.StatusOK, status, msg)
}
