//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Task ids as SMS assigns them (UUIDs); teams are told apart by enterprise
// project and task name.
const (
	roleTaskA1 = "d7fa81b9-c174-4c0a-a475-51a54c8af8a4"
	roleTaskA2 = "3f1c9a52-7d0e-4b8a-9c11-0a2b3c4d5e6f"
	roleTaskB1 = "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586"
	roleTaskNo = "00000000-0000-4000-8000-000000000000"
	ppA1       = "role-pp-a1-5c3e1a9b7d"
	ppA2       = "role-pp-a2-8f6d4b2a0c"
	ppB1       = "role-pp-b1-2e4c6a8b0d"
)

func init() { neverLog(ppA1, ppA2, ppB1) }

func teamsFake(t *testing.T) *fakeSMS {
	return startFake(t, smsfake.Options{
		Tokens: []string{smsToken},
		Tasks:  map[string]string{roleTaskA1: ppA1, roleTaskA2: ppA2, roleTaskB1: ppB1},
		TaskMeta: map[string]smsfake.TaskMeta{
			roleTaskA1: {Name: "team-a-web01", EnterpriseProjectID: "ep-team-a", State: "SYNCING"},
			roleTaskA2: {Name: "team-a-db01", EnterpriseProjectID: "ep-team-a", State: "READY"},
			roleTaskB1: {Name: "team-b-web01", EnterpriseProjectID: "ep-team-b", State: "READY"},
		},
	})
}

// teamToken writes a team's policy, one line per role path, and returns a
// token holding only it.
func teamToken(t *testing.T, v *vaultServer, team string) string {
	t.Helper()
	policy := filepath.Join(t.TempDir(), team+".hcl")
	require.NoError(t, os.WriteFile(policy, []byte(`
path "sms/roles/`+team+`/passphrase/*" {
  capabilities = ["read"]
}
path "sms/roles/`+team+`/tasks" {
  capabilities = ["list"]
}
`), 0o600))
	v.root("policy", "write", team, policy)
	token := strings.TrimSpace(v.root("token", "create", "-policy="+team, "-field=token"))
	neverLog(token)
	return token
}

func setUpTeams(t *testing.T, v *vaultServer, fake *fakeSMS) {
	t.Helper()
	v.mount("sms", fake, smsToken)
	v.root("write", "sms/roles/team-a", "enterprise_project_ids=ep-team-a", "description=Team A migrations")
	v.root("write", "sms/roles/team-b", "enterprise_project_ids=ep-team-b", "task_name_globs=team-b-*")
}

func TestTeamsReadAndListOnlyTheirOwnTasks(t *testing.T) {
	v := newVault(t, "roles")
	fake := teamsFake(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.root("audit", "enable", "file", "file_path="+auditPath)
	setUpTeams(t, v, fake)
	tokenA, tokenB := teamToken(t, v, "team-a"), teamToken(t, v, "team-b")

	require.Equal(t, ppA1, strings.TrimSpace(v.cliOK(tokenA, "read", "-field=passphrase", "sms/roles/team-a/passphrase/"+roleTaskA1)))
	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))

	// Another team's task and a task that does not exist: the same 403.
	codeOther, bodyOther := v.call(tokenA, "GET", "sms/roles/team-a/passphrase/"+roleTaskB1)
	codeNone, bodyNone := v.call(tokenA, "GET", "sms/roles/team-a/passphrase/"+roleTaskNo)
	require.Equal(t, http.StatusForbidden, codeOther, bodyOther)
	require.Equal(t, http.StatusForbidden, codeNone, bodyNone)
	require.Equal(t, strings.Replace(bodyOther, roleTaskB1, roleTaskNo, 1), bodyNone)
	require.Contains(t, bodyNone, "not in the scope of role")
	require.NotContains(t, bodyOther, ppB1)
	require.Zero(t, fake.Stats().ByTask[roleTaskNo])

	// Vault's ACL keeps a team to its own role's paths.
	code, _ := v.call(tokenA, "GET", "sms/roles/team-b/passphrase/"+roleTaskB1)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = v.call(tokenA, "GET", "sms/passphrase/"+roleTaskA1)
	require.Equal(t, http.StatusForbidden, code)

	// LIST: only the team's tasks, with name, state and enterprise project.
	out := v.cliOK(tokenA, "list", "-format=json", "sms/roles/team-a/tasks")
	var keys []string
	require.NoError(t, json.Unmarshal([]byte(out), &keys))
	require.ElementsMatch(t, []string{roleTaskA1, roleTaskA2}, keys)
	s, err := v.api(tokenA).Logical().List("sms/roles/team-a/tasks")
	require.NoError(t, err)
	info := s.Data["key_info"].(map[string]any)
	require.Equal(t, map[string]any{"name": "team-a-web01", "state": "SYNCING", "enterprise_project_id": "ep-team-a"}, info[roleTaskA1])
	require.NotContains(t, out, ppA1)
	out = v.cliOK(tokenB, "list", "-format=json", "sms/roles/team-b/tasks")
	require.NoError(t, json.Unmarshal([]byte(out), &keys))
	require.Equal(t, []string{roleTaskB1}, keys)

	// The audit log records the role path of each read, the passphrase HMACed.
	raw, err := os.ReadFile(auditPath)
	require.NoError(t, err)
	audit := string(raw)
	require.True(t, strings.Contains(audit, `"path":"sms/roles/team-a/passphrase/`+roleTaskA1+`"`), "the role path is audited")
	require.True(t, strings.Contains(audit, `"path":"sms/roles/team-a/tasks/"`) || strings.Contains(audit, `"path":"sms/roles/team-a/tasks"`))
	require.False(t, strings.Contains(audit, ppA1), "no passphrase in clear in the audit log")
}

func TestRoleEditsAndTaskMovesTakeEffect(t *testing.T) {
	v := newVault(t, "role-edits")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	v.root("write", "sms/config", "cache_ttl=60s", "token="+smsToken)
	tokenB := teamToken(t, v, "team-b")

	code, _ := v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskA1)
	require.Equal(t, http.StatusForbidden, code)
	// A role edit takes effect on the next read.
	v.root("write", "sms/roles/team-b", "enterprise_project_ids=ep-team-b,ep-team-a", "task_name_globs=team-b-*,team-a-web*")
	require.Equal(t, ppA1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskA1)))

	// The task moves to another enterprise project upstream: within
	// cache_ttl the cached metadata decides; a delete makes the move seen at once.
	fake.SetTaskMeta(roleTaskA1, smsfake.TaskMeta{Name: "team-a-web01", EnterpriseProjectID: "ep-elsewhere", State: "READY"})
	require.Equal(t, ppA1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskA1)))
	v.root("delete", "sms/passphrase/"+roleTaskA1)
	code, body := v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskA1)
	require.Equal(t, http.StatusForbidden, code, body)

	// Role definitions survive a restart.
	v.stop()
	v.start()
	v.unseal(v.unsealKey)
	data, err := v.readJSON(v.rootToken, "sms/roles/team-b")
	require.NoError(t, err)
	require.Equal(t, []any{"ep-team-b", "ep-team-a"}, data["enterprise_project_ids"])
	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))
	out := v.root("list", "sms/roles")
	require.Contains(t, out, "team-a")
	require.Contains(t, out, "team-b")

	v.root("delete", "sms/roles/team-b")
	code, _ = v.call(tokenB, "GET", "sms/roles/team-b/passphrase/"+roleTaskB1)
	require.Equal(t, http.StatusNotFound, code)
}

// requireShowable fails if s holds a character a terminal would not show as
// itself: a control other than a line break, a format character, a line or
// paragraph separator, or another default-ignorable code point.
func requireShowable(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r != '\n' && r != '\t' && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			t.Errorf("%s holds U+%04X", what, r)
			return
		}
	}
}

// Issue 17, defect 8, through the vault CLI: task names and states full of
// bidi overrides, zero-width characters, line separators and escapes are
// listed with each shown as U+FFFD, and an SMS error full of them reaches
// the CLI the same way.
func TestHiddenCharactersFromSMSReachNoTerminal(t *testing.T) {
	v := newVault(t, "roles-hidden")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	fake.SetTaskMeta(roleTaskB1, smsfake.TaskMeta{Name: "team-b-" + smsfake.HiddenCharacters + "web01",
		EnterpriseProjectID: "ep-team-b", State: "READY\u202e" + smsfake.HiddenCharacters})
	tokenB := teamToken(t, v, "team-b")

	out := v.cliOK(tokenB, "list", "-detailed", "sms/roles/team-b/tasks")
	requireShowable(t, "vault list -detailed", out)
	require.Contains(t, out, "team-b-\uFFFD\uFFFD")
	out = v.cliOK(tokenB, "list", "-detailed", "-format=json", "sms/roles/team-b/tasks")
	requireShowable(t, "vault list -detailed -format=json", out)
	var list struct {
		Data struct {
			KeyInfo map[string]map[string]string `json:"key_info"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	info := list.Data.KeyInfo[roleTaskB1]
	for field, s := range info {
		requireShowable(t, field, s) // decoded: JSON could carry them as escapes
	}
	require.True(t, strings.HasPrefix(info["state"], "READY\uFFFD"), "%q", info["state"])

	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultHiddenCharacters, Call: "passphrase"}))
	out, errOut, err := v.cli(tokenB, "read", "sms/roles/team-b/passphrase/"+roleTaskB1)
	require.Error(t, err, out)
	require.Contains(t, errOut, "Code: 502")
	require.Contains(t, errOut, "request refused\uFFFD")
	require.Contains(t, errOut, "<redacted>", "the token, quoted back spread out, is redacted")
	requireShowable(t, "the CLI's error", errOut)
	for _, line := range pluginLines(t, v) {
		requireShowable(t, "a line of the plugin's log", line)
	}
}

// Issue 17, defect 5: an operator deletes a team's role while the team's
// read waits on SMS; the read ends with the 404 a new read gets, not with
// the passphrase. The same for a certkey read and a narrowed role.
func TestRoleChangedWhileAReadWaitsThroughVault(t *testing.T) {
	v := newVault(t, "role-inflight")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	tokenA := teamToken(t, v, "team-a")

	inFlight := func(token, path string, change func()) (int, string) {
		t.Helper()
		before := fake.Stats().TaskRequests
		// The ShowTask answer is computed, then held until Release.
		require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 200, Call: "task", Body: smsfake.BodyHold, Times: 1}))
		var wg sync.WaitGroup
		var code int
		var body string
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body = v.call(token, "GET", path)
		}()
		waitFor(t, 10*time.Second, "the read's ShowTask to reach SMS", func() bool { return fake.Stats().TaskRequests == before+1 })
		change()
		fake.Release()
		wg.Wait()
		return code, body
	}

	code, body := inFlight(tokenA, "sms/roles/team-a/passphrase/"+roleTaskA1, func() {
		v.root("delete", "sms/roles/team-a")
		code, _ := v.call(v.rootToken, "GET", "sms/roles/team-a")
		require.Equal(t, http.StatusNotFound, code)
	})
	require.Equal(t, http.StatusNotFound, code, "served by a deleted role")
	require.NotContains(t, body, ppA1)
	require.Contains(t, body, `role \"team-a\" does not exist`)

	v.root("write", "sms/roles/team-a", "enterprise_project_ids=ep-team-a")
	code, body = inFlight(v.rootToken, "sms/roles/team-a/certkey/"+roleTaskA2, func() {
		v.root("write", "sms/roles/team-a", "enterprise_project_ids=ep-elsewhere")
	})
	require.Equal(t, http.StatusForbidden, code, "served by a role narrowed meanwhile")
	require.NotContains(t, body, "PRIVATE KEY")
}

// Issue 17, defect 7: team A, with only its role's paths, reads made-up
// ids. The "absent" markers never evict team B's cached passphrase, and
// once team A has its own budget its probes stop at it, without reaching
// SMS, while team B's reads go on.
func TestTeamProbesNeitherEvictNorStarveAnotherTeamThroughVault(t *testing.T) {
	v := newVault(t, "role-probes")
	fake := teamsFake(t)
	setUpTeams(t, v, fake)
	v.root("write", "sms/config", "cache_max_entries=3", "token="+smsToken)
	tokenA, tokenB := teamToken(t, v, "team-a"), teamToken(t, v, "team-b")
	probe := func(i int) (int, string) {
		return v.call(tokenA, "GET", fmt.Sprintf("sms/roles/team-a/passphrase/%08x-dead-4bee-8f00-000000000000", i))
	}

	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))
	for i := 0; i < 20; i++ {
		code, body := probe(i)
		require.Equal(t, http.StatusForbidden, code, body)
	}
	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))
	require.EqualValues(t, 1, fake.Stats().ByTask[roleTaskB1], "team B's passphrase was evicted by team A's probes")
	stats, err := v.readJSON(v.rootToken, "sms/cache")
	require.NoError(t, err)
	require.EqualValues(t, 1, stats["entries"])
	require.EqualValues(t, 4, stats["task_entries"], "team B's metadata, and 3 markers (the bound)")

	// Team A gets a budget of one fetch in a thousand seconds.
	v.root("write", "sms/roles/team-a", "max_upstream_rps=0.001")
	data, err := v.readJSON(v.rootToken, "sms/roles/team-a")
	require.NoError(t, err)
	require.EqualValues(t, 0.001, data["max_upstream_rps"])
	code, body := probe(100)
	require.Equal(t, http.StatusForbidden, code, body)
	sent := fake.Stats().TaskRequests
	for i := 101; i < 120; i++ {
		code, body := probe(i)
		require.Equal(t, http.StatusTooManyRequests, code, body)
		require.Contains(t, body, "max_upstream_rps")
	}
	require.Equal(t, sent, fake.Stats().TaskRequests, "team A's probes past its budget reached SMS")

	// Team B's cold reads are served meanwhile.
	v.root("delete", "sms/passphrase/"+roleTaskB1)
	require.Equal(t, ppB1, strings.TrimSpace(v.cliOK(tokenB, "read", "-field=passphrase", "sms/roles/team-b/passphrase/"+roleTaskB1)))
	require.Equal(t, sent+1, fake.Stats().TaskRequests)

	// A bad value is a 400 naming the field.
	_, errOut, err := v.cli(v.rootToken, "write", "sms/roles/team-a", "max_upstream_rps=-1")
	require.Error(t, err)
	require.Contains(t, errOut, "max_upstream_rps")
	require.Contains(t, errOut, "Code: 400")
}
