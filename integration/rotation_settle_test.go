//go:build integration

package integration

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Rotations whose IAM answers are lost, through a real Vault and its real
// rollback (about once a minute, for entries older than a minute): three
// mounts on one server, so that their waits overlap.
//
//   - sms-pw: a password change IAM applies after the answer's deadline;
//     then a config write and a plugin crash while it is unsettled. No
//     login until Vault's rollback settles it; then the new password is
//     stored and reads work (defects 1 and 3).
//   - sms-sched: a one-minute rotation_period whose every password change
//     is reset before IAM sees it, with a user IAM locks after two failed
//     logins in a row: never locked, and the config read shows the backoff
//     (defect 2).
//   - sms-ak: a key IAM creates after the create call's deadline: deleted
//     by the rollback, by its marker (defect 4).
func TestRotationsSurviveLostAnswersThroughVault(t *testing.T) {
	v := newVault(t, "rotate-settle")
	pwFake := startFake(t, smsfake.Options{
		Users:        []smsfake.User{{Domain: rotDomain, Name: rotUser, Password: rotPW}},
		Tasks:        map[string]string{"demo-task-0001": passphrase},
		LockoutAfter: 2,
	})
	schedFake := startFake(t, smsfake.Options{
		Users:        []smsfake.User{{Domain: "sched-domain", Name: "sched-user", Password: "Sched-pw-5d4c3b2a"}},
		Tasks:        map[string]string{"demo-task-0001": passphrase},
		LockoutAfter: 2,
	})
	akFake := rotationFake(t)
	neverLog("Sched-pw-5d4c3b2a")

	v.root("secrets", "enable", "-path=sms-pw", pluginName)
	v.root("write", "sms-pw/config", "endpoint="+pwFake.URL, "iam_endpoint="+pwFake.URL, "cache_ttl=0",
		"max_retries=0", "request_timeout=1", "username="+rotUser, "password="+rotPW, "domain_name="+rotDomain)
	v.root("secrets", "enable", "-path=sms-sched", pluginName)
	v.root("write", "sms-sched/config", "endpoint="+schedFake.URL, "iam_endpoint="+schedFake.URL, "cache_ttl=0",
		"max_retries=0", "rotation_period=1m", "username=sched-user", "password=Sched-pw-5d4c3b2a", "domain_name=sched-domain")
	v.root("secrets", "enable", "-path=sms-ak", pluginName)
	v.root("write", "sms-ak/config", "endpoint="+akFake.URL, "iam_endpoint="+akFake.URL, "cache_ttl=0",
		"max_retries=0", "request_timeout=1", "access_key="+rotAK, "secret_key="+rotSK)
	for _, m := range []string{"sms-pw", "sms-sched", "sms-ak"} {
		code, body := v.call(v.rootToken, "GET", m+"/passphrase/demo-task-0001")
		require.Equal(t, http.StatusOK, code, body)
	}
	require.NoError(t, schedFake.AddFault(smsfake.Fault{Mode: smsfake.FaultResetBeforeHeaders, Target: "iam", Call: "change-password"}))

	// sms-pw: IAM applies the change after the answer's deadline.
	require.NoError(t, pwFake.AddFault(smsfake.Fault{Mode: smsfake.FaultApplyLate, Target: "iam", Call: "change-password",
		Delay: smsfake.Duration(200 * time.Millisecond), Times: 1}))
	_, errOut, err := v.cli(v.rootToken, "write", "-f", "sms-pw/config/rotate-root")
	require.Error(t, err)
	require.Contains(t, errOut, "the rotation is unsettled")
	waitFor(t, 10*time.Second, "IAM to apply the change late", func() bool { return pwFake.Password(rotDomain, rotUser) != rotPW })
	neverLog(pwFake.Password(rotDomain, rotUser))

	// sms-ak: IAM creates the key after the answer's deadline.
	require.NoError(t, akFake.AddFault(smsfake.Fault{Mode: smsfake.FaultApplyLate, Target: "iam", Call: "create-key",
		Delay: smsfake.Duration(200 * time.Millisecond), Times: 1}))
	_, errOut, err = v.cli(v.rootToken, "write", "-f", "sms-ak/config/rotate-root")
	require.Error(t, err)
	require.Contains(t, errOut, "a key MAY have been created")
	waitFor(t, 10*time.Second, "IAM to create the key late", func() bool { return len(akFake.Keys(rotDomain, rotUser)) == 2 })
	for _, k := range akFake.Keys(rotDomain, rotUser) {
		neverLog(k.Secret)
	}

	unsettled := func(mount string) bool {
		data, err := v.readJSON(v.rootToken, mount+"/config")
		require.NoError(t, err)
		return data["rotation_unsettled"] == true
	}
	require.True(t, unsettled("sms-pw"))
	require.True(t, unsettled("sms-ak"))

	// No login with either password, whatever builds the client anew.
	tokens := pwFake.Stats().IAMTokenRequests
	readPW := func(what string) {
		t.Helper()
		code, body := v.call(v.rootToken, "GET", "sms-pw/passphrase/demo-task-0001")
		require.Equal(t, http.StatusServiceUnavailable, code, "%s: %s", what, body)
		require.Contains(t, body, "rotation is being settled", what)
	}
	readPW("unsettled")
	v.root("write", "sms-pw/config", "stale_if_error=60")
	readPW("after a config write")
	pids := pluginPIDs(t, v)
	require.NotEmpty(t, pids)
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	waitFor(t, 30*time.Second, "the plugin to serve again", func() bool {
		code, _ := v.call(v.rootToken, "GET", "sms-pw/config")
		return code == http.StatusOK
	})
	if unsettled("sms-pw") { // the rollback may have settled it already
		readPW("after the plugin was killed")
		require.Equal(t, tokens, pwFake.Stats().IAMTokenRequests, "no login while unsettled")
	}

	// Vault's rollback settles both.
	waitFor(t, 5*time.Minute, "the rollback to settle the password change", func() bool { return !unsettled("sms-pw") })
	code, body := v.call(v.rootToken, "GET", "sms-pw/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)
	require.LessOrEqual(t, pwFake.Stats().IAMLoginFailures, int64(1), "at most the settle's one refused login with the old password")
	require.Zero(t, pwFake.Stats().IAMLockouts)
	waitFor(t, 5*time.Minute, "the rollback to delete the key created late", func() bool {
		keys := akFake.Keys(rotDomain, rotUser)
		return len(keys) == 1 && keys[0].Access == rotAK && !unsettled("sms-ak")
	})
	code, body = v.call(v.rootToken, "GET", "sms-ak/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)

	// sms-sched has failed at least once by now, and backs off.
	waitFor(t, 3*time.Minute, "a failed scheduled rotation", func() bool {
		data, err := v.readJSON(v.rootToken, "sms-sched/config")
		require.NoError(t, err)
		return data["last_rotation_error"] != "" && data["rotation_backoff_until"] != ""
	})
	require.Zero(t, schedFake.Stats().IAMLockouts, "the schedule's failures never lock the user out")
	schedFake.ClearFaults()
	waitFor(t, 4*time.Minute, "the schedule's failure to be settled", func() bool { return !unsettled("sms-sched") })
	schedFake.RevokeTokens()
	code, body = v.call(v.rootToken, "GET", "sms-sched/passphrase/demo-task-0001")
	require.Equal(t, http.StatusOK, code, body)
	require.Zero(t, schedFake.Stats().IAMLockouts)
}
