//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// The least-privilege deployment of issue 18: the mount's own identity may
// assume agencies (Agent Operator) and do nothing in SMS; each team's tasks
// are reached through an agency in the team's own account, whose policy
// admits that team's enterprise project only.
const (
	opsAccount   = "itest-ops-account"
	opsUser      = "vault-sms"
	opsPassword  = "itest-ops-pw-6d5c4b3a2f1e0d9c"
	teamAAccount = "itest-team-a-account"
	teamBAccount = "itest-team-b-account"
	// agencyName is the same in both teams' accounts: only the account
	// tells the two agencies apart.
	agencyName = "vault-sms-read"
)

func init() { neverLog(opsPassword) }

// teamAgency is a team's agency: trusting the accounts given, allowed the
// four SMS read actions on its enterprise project only.
func teamAgency(account, project string, trusted ...string) smsfake.Agency {
	return smsfake.Agency{Name: agencyName, Domain: account, Trusted: trusted,
		Permissions: &smsfake.Permissions{
			Actions:            []string{"sms:server:getTask", "sms:server:listTask", "sms:server:getTaskPassphrase", "sms:server:getCert"},
			EnterpriseProjects: []string{project},
		}}
}

// leastPrivilegeFake is the teams' SMS with the mount's identity as
// perms (an IAM user of the ops account, or the federated user of fedIdP)
// and the two teams' agencies trusting trusted.
func leastPrivilegeFake(t *testing.T, trusted string, extra smsfake.Options) (*fakeSMS, *idTokenLog) {
	opts := extra
	opts.Tasks = map[string]string{roleTaskA1: ppA1, roleTaskA2: ppA2, roleTaskB1: ppB1}
	opts.TaskMeta = map[string]smsfake.TaskMeta{
		roleTaskA1: {Name: "team-a-web01", EnterpriseProjectID: "ep-team-a", State: "SYNCING"},
		roleTaskA2: {Name: "team-a-db01", EnterpriseProjectID: "ep-team-a", State: "READY"},
		roleTaskB1: {Name: "team-b-web01", EnterpriseProjectID: "ep-team-b", State: "READY"},
	}
	opts.Users = []smsfake.User{{Domain: opsAccount, Name: opsUser, Password: opsPassword}}
	opts.UserPermissions = map[string]*smsfake.Permissions{opsAccount + "/" + opsUser: {AgentOperator: true}}
	opts.Agencies = []smsfake.Agency{teamAgency(teamAAccount, "ep-team-a", trusted), teamAgency(teamBAccount, "ep-team-b", trusted)}
	return startFederatedFake(t, opts)
}

// agencyRoles writes the two teams' roles: any task name, each through its
// team's agency (team B's named by account ID, with a shorter duration).
func agencyRoles(t *testing.T, v *vaultServer) {
	t.Helper()
	v.root("write", "sms/roles/team-a", "task_name_globs=*",
		"agency_name="+agencyName, "agency_domain_name="+teamAAccount)
	v.root("write", "sms/roles/team-b", "task_name_globs=*",
		"agency_name="+agencyName, "agency_domain_id="+smsfake.DomainID(teamBAccount), "agency_duration=30m")
}

// mountAsOpsUser mounts sms with the ops account's IAM user.
func mountAsOpsUser(t *testing.T, v *vaultServer, fake *fakeSMS, extra ...string) {
	t.Helper()
	v.root("secrets", "enable", "-path=sms", pluginName)
	v.root(append([]string{"write", "sms/config", "endpoint=" + fake.URL, "iam_endpoint=" + fake.URL,
		"username=" + opsUser, "password=" + opsPassword, "domain_name=" + opsAccount}, extra...)...)
}

// sessionsOfAccount are the session names the roles through each
// account's agency may use.
var sessionsOfAccount = map[string][]string{teamAAccount: {"team-a", "vault-qa"}, teamBAccount: {"team-b"}}

// requireTraceOfLeastPrivilege checks the stand-in's Cloud Trace: every
// SMS call made through an agency carries the session name of the role
// whose agency it is, and no call made with the mount's own identity (or
// any other) succeeded.
func requireTraceOfLeastPrivilege(t *testing.T, calls []smsfake.Call) {
	t.Helper()
	for _, c := range calls {
		switch c.Kind {
		case "agency":
			require.Equal(t, agencyName, c.Name, traceText(calls))
			require.Contains(t, sessionsOfAccount[c.Domain], c.Session, "a call through %s's agency under another session name:\n%s", c.Domain, traceText(calls))
		default:
			require.NotEqual(t, http.StatusOK, c.Status, "an SMS call succeeded outside the agencies:\n%s", traceText(calls))
		}
	}
}

func listKeys(t *testing.T, v *vaultServer, token, path string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, json.Unmarshal([]byte(v.cliOK(token, "list", "-format=json", path)), &keys))
	return keys
}

// Issue 18, part 2, through a real Vault: the mount's identity has no SMS
// right; each team reads and lists its own tasks through its role's agency,
// gets the out-of-scope 403 for the other team's task although its globs
// admit every name (Huawei refused it, and nothing fetched through the
// other agency is served), and the direct path is SMS's permission error.
func TestLeastPrivilegeTeamsReadThroughTheirAgencies(t *testing.T) {
	fake, _ := leastPrivilegeFake(t, opsAccount, smsfake.Options{})
	defer neverLogIssued(fake)
	v := newVault(t, "agency")
	mountAsOpsUser(t, v, fake)
	agencyRoles(t, v)
	tokenA, tokenB := teamToken(t, v, "team-a"), teamToken(t, v, "team-b")

	roleA, err := v.readJSON(v.rootToken, "sms/roles/team-a")
	require.NoError(t, err)
	require.Equal(t, agencyName, roleA["agency_name"])
	require.Equal(t, teamAAccount, roleA["agency_domain_name"])
	require.EqualValues(t, 3600, roleA["agency_duration"], "the default, in seconds")
	require.Equal(t, "team-a", roleA["agency_session_name"], "a valid session name is the role name")
	roleB, err := v.readJSON(v.rootToken, "sms/roles/team-b")
	require.NoError(t, err)
	require.Equal(t, smsfake.DomainID(teamBAccount), roleB["agency_domain_id"])
	require.EqualValues(t, 1800, roleB["agency_duration"])

	// Each team reads its own tasks.
	require.Equal(t, ppA1, strings.TrimSpace(v.cliOK(tokenA, "read", "-field=passphrase", "sms/roles/team-a/passphrase/"+roleTaskA1)))
	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))

	// Team A's task is cached now, fetched through team A's agency: team B,
	// whose globs admit it, gets the out-of-scope 403, decided by Huawei
	// (ShowTask through team B's agency), and no passphrase call.
	code, bodyB := v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskA1)
	require.Equal(t, http.StatusForbidden, code, shown(bodyB))
	require.Contains(t, bodyB, "not in the scope of role")
	require.NotContains(t, bodyB, ppA1)
	code, bodyNone := v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskNo)
	require.Equal(t, http.StatusForbidden, code, shown(bodyNone))
	require.Equal(t, strings.Replace(bodyB, roleTaskA1, roleTaskNo, 1), bodyNone, "refused by Huawei reads as absent")
	code, bodyA := v.call(tokenA, "GET", "sms/roles/team-a/passphrase/"+roleTaskB1)
	require.Equal(t, http.StatusForbidden, code, shown(bodyA))
	require.Contains(t, bodyA, "not in the scope of role")
	require.EqualValues(t, 1, fake.Stats().ByTask[roleTaskA1], "one passphrase call for team A's task: team A's")
	require.EqualValues(t, 1, fake.Stats().ByTask[roleTaskB1], "one passphrase call for team B's task: team B's")

	// Lists through the agencies: SMS lists what each policy admits.
	require.ElementsMatch(t, []string{roleTaskA1, roleTaskA2}, listKeys(t, v, tokenA, "sms/roles/team-a/tasks"))
	require.Equal(t, []string{roleTaskB1}, listKeys(t, v, tokenB, "sms/roles/team-b/tasks"))
	key := v.root("read", "-field=private_key", "sms/roles/team-a/certkey/"+roleTaskA2)
	require.Contains(t, key, "PRIVATE KEY")
	neverLog(keyBodies(fake.CertKeyOf(roleTaskA2))...)

	// A role whose name is no valid session name gets one derived from
	// it, and credentials of its own under it; it names team A's agency, so
	// it shares the answers cached through that agency (team A's task
	// metadata) but not the direct path's.
	v.root("write", "sms/roles/qa", "agency_name="+agencyName, "agency_domain_name="+teamAAccount)
	roleQA, err := v.readJSON(v.rootToken, "sms/roles/qa")
	require.NoError(t, err)
	require.Equal(t, "vault-qa", roleQA["agency_session_name"])
	require.Equal(t, ppA2, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/roles/qa/passphrase/"+roleTaskA2)))

	// The direct path runs with the mount's identity, which SMS refuses,
	// even for a task cached through an agency.
	code, body := v.call(v.rootToken, "GET", "sms/passphrase/"+roleTaskA1)
	require.Equal(t, http.StatusBadGateway, code, shown(body))
	require.Contains(t, body, "SMS.9004")
	require.NotContains(t, body, ppA1)

	calls := fake.Calls()
	requireTraceOfLeastPrivilege(t, calls)
	byAgency := func(call, task, account string, status int) int {
		n := 0
		for _, c := range callsOf(calls, call, task) {
			if c.Kind == "agency" && c.Domain == account && c.Status == status {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, byAgency("passphrase", roleTaskA1, teamAAccount, 200), traceText(calls))
	require.Equal(t, 1, byAgency("passphrase", roleTaskB1, teamBAccount, 200), traceText(calls))
	require.Equal(t, 1, byAgency("task", roleTaskA1, teamBAccount, 403), "team B's ShowTask of team A's task, refused by Huawei:\n%s", traceText(calls))
	require.Equal(t, 1, byAgency("certkey", roleTaskA2, teamAAccount, 200), traceText(calls))
	qaReads := callsOf(calls, "passphrase", roleTaskA2)
	require.Len(t, qaReads, 1, traceText(calls))
	require.Equal(t, "vault-qa", qaReads[0].Session, "Cloud Trace tells the role qa from team A")
	require.Len(t, callsOf(calls, "task", roleTaskA2), 1, "the role qa used the metadata cached through the same agency:\n%s", traceText(calls))
	require.EqualValues(t, 3, fake.Stats().IAMKeyCalls["security-token"], "one assume_role per role, kept for later reads")
}

// Issue 18, part 2: IAM refusing an agency (deleted, or no longer
// trusting the mount's account) is a 502 naming IAM's status, remembered
// so that reads do not storm IAM, confined to the roles of that agency;
// expired temporary credentials are replaced once and the read succeeds.
func TestAgencyRefusedAndExpiredThroughVault(t *testing.T) {
	fake, _ := leastPrivilegeFake(t, opsAccount, smsfake.Options{})
	defer neverLogIssued(fake)
	v := newVault(t, "agency-faults")
	mountAsOpsUser(t, v, fake, "cache_ttl=0")
	agencyRoles(t, v)
	tokenA, tokenB := teamToken(t, v, "team-a"), teamToken(t, v, "team-b")
	readA := func() (int, string) { return v.call(tokenA, "GET", "sms/roles/team-a/passphrase/"+roleTaskA1) }
	readB := func() (int, string) { return v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskB1) }
	assumed := func() int64 { return fake.Stats().IAMKeyCalls["security-token"] }

	code, body := readA()
	require.Equal(t, http.StatusOK, code, shown(body))
	require.EqualValues(t, 1, assumed())

	// Expiry: SMS answers 401 to the old credentials; one assume_role, and
	// the read succeeds.
	fake.ClearCalls()
	fake.ExpireTemporaryKeys()
	code, body = readA()
	require.Equal(t, http.StatusOK, code, shown(body))
	require.Contains(t, body, ppA1)
	require.EqualValues(t, 2, assumed())
	calls := fake.Calls()
	require.Equal(t, http.StatusUnauthorized, calls[0].Status, traceText(calls))
	for _, c := range calls[1:] {
		require.Equal(t, http.StatusOK, c.Status, traceText(calls))
		require.Equal(t, "team-a", c.Session)
	}

	// The agency is deleted: the next assume_role is refused with IAM's
	// 404, and the refusal is remembered.
	code, body = readB()
	require.Equal(t, http.StatusOK, code, shown(body))
	fake.DeleteAgency(teamAAccount, agencyName)
	fake.ExpireTemporaryKeys()
	before := assumed()
	code, body = readA()
	require.Equal(t, http.StatusBadGateway, code, shown(body))
	require.Contains(t, body, `IAM refused to let the engine's credential assume agency \"`+agencyName+`\" of account \"`+teamAAccount+`\"`)
	require.Contains(t, body, "HTTP 404")
	require.NotContains(t, body, ppA1)
	assertNoSecrets(t, "the error of a refused agency", body)
	require.Equal(t, before+1, assumed())
	for i := 0; i < 20; i++ {
		code, body = readA()
		require.Equal(t, http.StatusBadGateway, code, shown(body))
	}
	require.Equal(t, before+1, assumed(), "a refused agency is not asked again at every read")
	code, body = v.call(tokenA, "GET", "sms/roles/team-a/tasks?list=true")
	require.Equal(t, http.StatusBadGateway, code, "a list through the refused agency: %s", shown(body))

	// Team B's agency is another: its reads go on (new credentials, as
	// its old ones expired too).
	code, body = readB()
	require.Equal(t, http.StatusOK, code, shown(body))
	require.Equal(t, before+2, assumed())

	// Team B's agency stops trusting the mount's account: IAM's 403.
	require.NoError(t, fake.SetAgency(teamAgency(teamBAccount, "ep-team-b", "someone-else")))
	fake.ExpireTemporaryKeys()
	code, body = readB()
	require.Equal(t, http.StatusBadGateway, code, shown(body))
	require.Contains(t, body, `IAM refused to let the engine's credential assume agency`)
	require.Contains(t, body, "HTTP 403")
	for i := 0; i < 20; i++ {
		code, body = readB()
		require.Equal(t, http.StatusBadGateway, code, shown(body))
	}
	require.Equal(t, before+3, assumed(), "a refused agency is not asked again at every read")

	// Never through the mount's own identity meanwhile.
	requireTraceOfLeastPrivilege(t, fake.Calls())

	// Mended in IAM: team B's refusal is still remembered; a write of its
	// role starts afresh, and so does a config write for every role.
	require.NoError(t, fake.SetAgency(teamAgency(teamBAccount, "ep-team-b", opsAccount)))
	code, body = readB()
	require.Equal(t, http.StatusBadGateway, code, shown(body))
	require.Contains(t, body, "remembered")
	v.root("write", "sms/roles/team-b", "description=Team B")
	code, body = readB()
	require.Equal(t, http.StatusOK, code, shown(body))
	require.NoError(t, fake.SetAgency(teamAgency(teamAAccount, "ep-team-a", opsAccount)))
	v.root("write", "sms/config", "cache_ttl=0")
	code, body = readA()
	require.Equal(t, http.StatusOK, code, shown(body))
	code, body = readB()
	require.Equal(t, http.StatusOK, code, shown(body))
	requireTraceOfLeastPrivilege(t, fake.Calls())

	// A role write drops that role's credentials: new ones at the next read.
	before = assumed()
	v.root("write", "sms/roles/team-a", "description=Team A, through its own account")
	code, body = readA()
	require.Equal(t, http.StatusOK, code, shown(body))
	code, body = readB()
	require.Equal(t, http.StatusOK, code, shown(body))
	require.Equal(t, before+1, assumed(), "team A's credentials were obtained again, team B's kept")
}

// Issue 18, cached answers per identity, through a real Vault, in a
// deployment where the mount's own identity may still read everything (the
// operators' role and direct path): what it fetched is never served
// through an agency, so Huawei decides each agency's first access; an
// eviction (a task, or the whole cache) reaches every identity's entries;
// and a role's own lists bound it on top of its agency.
func TestAgencyAnswersAreKeptApartAndEvictedThroughVault(t *testing.T) {
	fake, _ := leastPrivilegeFake(t, opsAccount, smsfake.Options{})
	fake.SetPermissions(opsAccount, opsUser, nil) // every SMS action, and Agent Operator
	defer neverLogIssued(fake)
	v := newVault(t, "agency-cache")
	mountAsOpsUser(t, v, fake)
	agencyRoles(t, v)
	v.root("write", "sms/roles/ops", "enterprise_project_ids=ep-team-a,ep-team-b")
	tokenA, tokenB := teamToken(t, v, "team-a"), teamToken(t, v, "team-b")
	readAs := func(token, role, task string) (int, string) {
		return v.call(token, "GET", "sms/roles/"+role+"/passphrase/"+task)
	}
	requirePassphrase := func(want, token, role, task string) {
		t.Helper()
		code, body := readAs(token, role, task)
		require.Equal(t, http.StatusOK, code, shown(body))
		var s struct {
			Data struct {
				Passphrase string `json:"passphrase"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &s))
		require.True(t, s.Data.Passphrase == want, "role %s, task %s: not the passphrase expected", role, task)
	}

	// The operators read both teams' tasks with the mount's identity.
	requirePassphrase(ppA1, v.rootToken, "ops", roleTaskA1)
	requirePassphrase(ppB1, v.rootToken, "ops", roleTaskB1)
	require.Equal(t, ppA1, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/"+roleTaskA1)))

	// Team B's agency may not see team A's task: nothing the mount fetched
	// is served to it.
	code, body := readAs(tokenB, "team-b", roleTaskA1)
	require.Equal(t, http.StatusForbidden, code, shown(body))
	// Team A's first read is a new fetch through its agency.
	requirePassphrase(ppA1, tokenA, "team-a", roleTaskA1)
	calls := fake.Calls()
	var agencyReads int
	for _, c := range callsOf(calls, "passphrase", roleTaskA1) {
		if c.Kind == "agency" {
			require.Equal(t, teamAAccount, c.Domain)
			require.Equal(t, http.StatusOK, c.Status)
			agencyReads++
		}
	}
	require.Equal(t, 1, agencyReads, traceText(calls))

	// The passphrase changes upstream; an operator evicts the task: every
	// identity's next read fetches it afresh.
	rotated := "role-pp-a1-rotated-7f3e9c1b"
	neverLog(rotated)
	fake.SetTask(roleTaskA1, rotated)
	requirePassphrase(ppA1, tokenA, "team-a", roleTaskA1) // cached
	v.root("delete", "sms/passphrase/"+roleTaskA1)
	requirePassphrase(rotated, tokenA, "team-a", roleTaskA1)
	requirePassphrase(rotated, v.rootToken, "ops", roleTaskA1)

	// The same through a flush of the whole cache.
	rotatedB := "role-pp-b1-rotated-0d2c4e6a"
	neverLog(rotatedB)
	requirePassphrase(ppB1, tokenB, "team-b", roleTaskB1)
	fake.SetTask(roleTaskB1, rotatedB)
	v.root("delete", "sms/cache")
	requirePassphrase(rotatedB, tokenB, "team-b", roleTaskB1)

	// A role's own globs bound it on top of its agency's policy.
	v.root("write", "sms/roles/team-a", "task_name_globs=team-a-db*")
	code, body = readAs(tokenA, "team-a", roleTaskA1)
	require.Equal(t, http.StatusForbidden, code, shown(body))
	requirePassphrase(ppA2, tokenA, "team-a", roleTaskA2)
}
