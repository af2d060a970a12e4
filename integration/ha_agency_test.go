//go:build integration

package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Issue 18 in a Raft cluster, with no long-lived Huawei secret anywhere:
// the mount signs in with the cluster's projected service-account token
// (the federated user may only assume agencies) and each team reads through
// its agency. After the active node dies, the node that takes over (a new
// plugin process: no IAM token, no temporary credentials) exchanges the
// token file and assumes the agencies itself, and the teams' reads and
// refusals are what they were.
func TestRaftFailoverWithAgencyRoles(t *testing.T) {
	key := newRSAKey(t, "sa-key-ha")
	jwt := key.idToken(t)
	tokenFile := newProjectedToken(t, jwt)
	fake, sent := leastPrivilegeFake(t, fedAccount, smsfake.Options{
		IdentityProviders: []smsfake.IdentityProvider{fedIdP(&smsfake.Permissions{AgentOperator: true}, key)},
	})
	defer neverLogIssued(fake)

	nodes := startRaftCluster(t)
	leader := nodes[0]
	leader.registerForIDToken(version1, tokenFile)
	leader.root("secrets", "enable", "-path=sms", pluginName)
	leader.root("write", "sms/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"idp_id="+fedIdpID, "domain_name="+fedAccount)
	agencyRoles(t, leader)
	tokenA, tokenB := teamToken(t, leader, "team-a"), teamToken(t, leader, "team-b")

	check := func(n *vaultServer) {
		t.Helper()
		require.Equal(t, ppA1, strings.TrimSpace(n.cliOK(tokenA, "read", "-field=passphrase", "sms/roles/team-a/passphrase/"+roleTaskA1)), n.name)
		require.Equal(t, ppB1, strings.TrimSpace(n.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)), n.name)
		code, body := n.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskA1)
		require.Equal(t, http.StatusForbidden, code, "%s: %s", n.name, shown(body))
		code, body = n.call(n.rootToken, "GET", "sms/passphrase/"+roleTaskA1)
		require.Equal(t, http.StatusBadGateway, code, "%s: %s", n.name, shown(body))
		require.Contains(t, body, "SMS.9004", n.name)
	}
	standby := nodes[1]
	require.False(t, isActive(standby))
	check(standby) // forwarded to the active node
	check(leader)
	require.Equal(t, []string{jwt}, sent.all(), "one exchange, of the token file")
	require.EqualValues(t, 2, fake.Stats().IAMKeyCalls["security-token"], "one assume_role per agency")

	leader.kill()
	fake.ClearCalls()
	survivors := nodes[1:]
	active := waitForNewActive(t, survivors)
	t.Logf("%s took over", active.name)
	for _, n := range survivors {
		waitFor(t, 60*time.Second, n.name+" to know the new active node", func() bool {
			var l struct {
				LeaderAddress string `json:"leader_address"`
			}
			return sysState(n, "sys/leader", &l) && l.LeaderAddress == active.addr
		})
	}
	for _, n := range survivors {
		check(n)
		role, err := n.readJSON(n.rootToken, "sms/roles/team-b")
		require.NoError(t, err, n.name)
		require.Equal(t, smsfake.DomainID(teamBAccount), role["agency_domain_id"], n.name)
		require.EqualValues(t, 1800, role["agency_duration"], n.name)
	}
	require.Equal(t, []string{jwt, jwt}, sent.all(), "the new active node exchanged the token file once")
	require.EqualValues(t, 4, fake.Stats().IAMKeyCalls["security-token"], "and assumed each agency once")

	calls := fake.Calls()
	requireTraceOfLeastPrivilege(t, calls)
	for _, team := range []struct{ account, task string }{{teamAAccount, roleTaskA1}, {teamBAccount, roleTaskB1}} {
		ok := 0
		for _, c := range callsOf(calls, "passphrase", team.task) {
			if c.Kind == "agency" && c.Domain == team.account && c.Status == http.StatusOK {
				ok++
			}
		}
		require.Equal(t, 1, ok, "after the failover, %s read once through its agency (then cached):\n%s", team.account, traceText(calls))
	}
	for _, c := range calls {
		if c.Kind == "federated" {
			require.Equal(t, fedUserName, c.Name)
		}
	}
}
