package sms

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// An ID-token exchange and an assume_role change nothing upstream that
// could need undoing: IAM issues a credential. An answer lost after IAM
// issued it (a 504 or a reset after the fact, or an answer after the
// deadline) must cost one failed read at most: never a remembered refusal,
// never a credential kept from a broken answer, and the next read gets a
// new one.
var lostIssueAnswers = []struct {
	name  string
	fault smsfake.Fault
}{
	{"504 after issuing", smsfake.Fault{Mode: smsfake.FaultAppliedStatus, Status: 504}},
	{"reset after issuing", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 201, Body: smsfake.BodyDrop}},
	{"answer cut short", smsfake.Fault{Mode: smsfake.FaultStatus, Status: 201, Body: smsfake.BodyTruncate}},
	{"issued after the deadline", smsfake.Fault{Mode: smsfake.FaultApplyLate}},
}

func TestLostIDTokenExchangeAnswersAreNotRemembered(t *testing.T) {
	for _, tc := range lostIssueAnswers {
		t.Run(tc.name, func(t *testing.T) {
			env := newIDTokenEnv(t, nil)
			env.mint("sub")
			status, msg := env.configureIDToken(map[string]any{"cache_ttl": 0, "request_timeout": 1, "max_retries": 0})
			require.Equal(t, http.StatusNoContent, status, msg)
			f := tc.fault
			f.Target, f.Call, f.Times = "iam", "id-token", 1
			require.NoError(t, env.fake.AddFault(f))

			_, status, msg = env.readPassphrase(testTask)
			require.Contains(t, []int{http.StatusBadGateway, http.StatusGatewayTimeout}, status, msg)
			require.NotContains(t, msg, "remembered")
			waitLate(t, env.testEnv, f)
			_, status, msg = env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, msg)
			require.EqualValues(t, 2, env.fake.Stats().IAMKeyCalls["id-token"])
		})
	}
}

func TestLostAssumeRoleAnswersAreNotRemembered(t *testing.T) {
	for _, tc := range lostIssueAnswers {
		t.Run(tc.name, func(t *testing.T) {
			env := newAgencyEnv(t)
			status, msg := env.write("config", map[string]any{"password": testPassword, "cache_ttl": 0, "request_timeout": 1, "max_retries": 0})
			require.Equal(t, http.StatusNoContent, status, msg)
			f := tc.fault
			f.Target, f.Call, f.Times = "iam", "security-token", 1
			require.NoError(t, env.fake.AddFault(f))

			_, status, msg = env.read("roles/team-a/passphrase/" + taskOfA)
			require.Contains(t, []int{http.StatusBadGateway, http.StatusGatewayTimeout}, status, msg)
			require.NotContains(t, msg, "remembered")
			waitLate(t, env, f)
			resp, status, msg := env.read("roles/team-a/passphrase/" + taskOfA)
			require.Equal(t, http.StatusOK, status, msg)
			require.Equal(t, passOfA, resp.Data["passphrase"])
			require.EqualValues(t, 2, assumeRoleCalls(env))
		})
	}
}

// waitLate waits, for a call IAM carries out after its deadline, until IAM
// has: the exchange that timed out is then over, and the next read starts
// its own rather than joining it.
func waitLate(t *testing.T, env *testEnv, f smsfake.Fault) {
	t.Helper()
	if f.Mode == smsfake.FaultApplyLate {
		require.Eventually(t, func() bool { return env.fake.Stats().IAMAppliedLate > 0 }, 10*time.Second, 5*time.Millisecond)
	}
}
