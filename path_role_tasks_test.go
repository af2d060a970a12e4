package sms

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// requireShowable fails if s holds a character a terminal would not show as
// itself: a control, a format character (bidi overrides, zero-width...), a
// line or paragraph separator.
func requireShowable(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			t.Errorf("%s holds U+%04X", what, r)
			return
		}
	}
}

// Issue 17, defect 8: task names, states and enterprise project ids that SMS
// fills with bidi overrides, zero-width and other format characters, line
// separators and controls reach a team's terminal with each of them shown as
// U+FFFD (line breaks as a space); scope is still judged on SMS's own text.
func TestRoleTasksShowHiddenCharactersAsReplacements(t *testing.T) {
	env := newRolesEnv(t)
	env.fake.SetTaskMeta(taskB1, smsfake.TaskMeta{Name: "team-b-" + smsfake.HiddenCharacters + "web",
		EnterpriseProjectID: "ep" + smsfake.HiddenCharacters, State: "READY" + smsfake.HiddenCharacters + "\u2028"})
	env.fake.SetTaskMeta(taskA1, smsfake.TaskMeta{Name: "team-a-\x1b[31mweb\x00", EnterpriseProjectID: "ep-team-a", State: "READY\n"})

	resp, status, msg := listRole(t, env, "team-b")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, []string{taskB1}, resp.Data["keys"], "in scope by its name as SMS wrote it")
	info := resp.Data["key_info"].(map[string]any)[taskB1].(map[string]any)
	for _, field := range []string{"name", "state", "enterprise_project_id"} {
		requireShowable(t, field, info[field].(string))
	}
	require.True(t, strings.HasPrefix(info["name"].(string), "team-b-\uFFFD\uFFFD"), "%q", info["name"])
	require.True(t, strings.HasSuffix(info["name"].(string), "  \uFFFD[31m\uFFFD\uFFFD \uFFFDweb"), "%q", info["name"])

	resp, status, msg = listRole(t, env, "team-a")
	require.Equal(t, http.StatusOK, status, msg)
	info = resp.Data["key_info"].(map[string]any)[taskA1].(map[string]any)
	require.Equal(t, "team-a-\uFFFD[31mweb\uFFFD", info["name"], "an escape is shown as U+FFFD too")
	require.Equal(t, "READY", info["state"])
}

// Issue 17, defect 8: error_code, error_msg and X-Request-Id full of hidden
// characters, from SMS or IAM, on every path that repeats them (errors of
// reads, lists and role reads, stale warnings, the log), are shown with
// U+FFFD, and a credential the upstream quotes back with a hidden character
// between each two of its characters is still redacted.
func TestUpstreamTextWithHiddenCharactersIsShowableAndRedacted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  smsfake.Fault
		method string
		read   func(env *testEnv) (string, []string)
	}{
		{"passphrase", smsfake.Fault{Call: "passphrase"}, "token", func(env *testEnv) (string, []string) {
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(env.t, http.StatusBadGateway, status, env.safe(msg))
			return msg, nil
		}},
		{"certkey through a role", smsfake.Fault{Call: "certkey"}, "token", func(env *testEnv) (string, []string) {
			_, status, msg := env.readCertKey("roles/team-a/certkey/"+taskA1, false)
			require.Equal(env.t, http.StatusBadGateway, status, env.safe(msg))
			return msg, nil
		}},
		{"role list", smsfake.Fault{Call: "tasks"}, "token", func(env *testEnv) (string, []string) {
			_, status, msg := listRole(env.t, env, "team-a")
			require.Equal(env.t, http.StatusBadGateway, status, env.safe(msg))
			return msg, nil
		}},
		{"stale warning", smsfake.Fault{Call: "passphrase", Status: 503}, "token", func(env *testEnv) (string, []string) {
			env.fake.ClearFaults()
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(env.t, http.StatusOK, status, msg)
			env.clock.Advance(2 * time.Hour)
			require.NoError(env.t, env.fake.AddFault(smsfake.Fault{Mode: smsfake.FaultHiddenCharacters, Call: "passphrase", Status: 503}))
			resp, status, msg := env.readPassphrase(testTask)
			require.Equal(env.t, http.StatusOK, status, env.safe(msg))
			require.Len(env.t, resp.Warnings, 1)
			return resp.Warnings[0], resp.Warnings
		}},
		{"IAM token", smsfake.Fault{Target: "iam", Call: "token", Status: 401}, "password", func(env *testEnv) (string, []string) {
			_, status, msg := env.readPassphrase(testTask)
			require.Equal(env.t, http.StatusBadGateway, status, env.safe(msg))
			return msg, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newRolesEnv(t)
			if tc.method == "password" {
				env.configurePassword(map[string]any{"max_retries": 0, "token": ""})
			} else {
				env.configure(map[string]any{"max_retries": 0, "cache_ttl": "1h", "stale_if_error": "24h"})
			}
			f := tc.fault
			f.Mode = smsfake.FaultHiddenCharacters
			require.NoError(t, env.fake.AddFault(f))
			msg, _ := tc.read(env)
			requireShowable(t, "the message", msg)
			require.Contains(t, msg, "request refused\uFFFD", env.safe(msg))
			require.Contains(t, msg, "<redacted>", env.safe(msg))
			for _, line := range strings.Split(strings.TrimSuffix(env.logs.String(), "\n"), "\n") {
				requireShowable(t, "a log line", line)
			}
			for _, s := range append(env.fake.IssuedTokens(), testToken, testPassword) {
				assertNoFragment(t, "the message", strings.ReplaceAll(msg, "\uFFFD", ""), s)
				assertNoFragment(t, "the log", env.logs.String(), s)
			}
		})
	}
}
