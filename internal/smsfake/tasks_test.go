package smsfake

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShowTaskAndListTasks(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"},
		Tasks: map[string]string{"t1": "p1", "t2": "p2", "t3": "p3", "t4": "p4"},
		TaskMeta: map[string]TaskMeta{
			"t1": {Name: "team-a-web", EnterpriseProjectID: "ep-a", State: "READY"},
			"t2": {Name: "team-a-db", EnterpriseProjectID: "ep-a", State: "SYNCING"},
			"t3": {Name: "team-b-web", EnterpriseProjectID: "ep-b", State: "READY"},
		}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	auth := map[string]string{"X-Auth-Token": "tok"}

	resp, body := get(t, srv, "/v3/tasks/t1", auth)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "t1", body["id"])
	require.Equal(t, "team-a-web", body["name"])
	require.Equal(t, "ep-a", body["enterprise_project_id"])
	resp, body = get(t, srv, "/v3/tasks/t4", auth)
	require.Equal(t, "0", body["enterprise_project_id"], "the default enterprise project")
	resp, _ = get(t, srv, "/v3/tasks/nope", auth)
	require.Equal(t, 404, resp.StatusCode)
	resp, _ = get(t, srv, "/v3/tasks/t1", nil)
	require.Equal(t, 401, resp.StatusCode)

	ids := func(body map[string]any) []string {
		var out []string
		for _, it := range body["tasks"].([]any) {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	_, body = get(t, srv, "/v3/tasks?limit=2&offset=0", auth)
	require.EqualValues(t, 4, body["count"])
	require.Equal(t, []string{"t1", "t2"}, ids(body))
	_, body = get(t, srv, "/v3/tasks?limit=2&offset=2", auth)
	require.Equal(t, []string{"t3", "t4"}, ids(body))
	_, body = get(t, srv, "/v3/tasks?limit=2&offset=4", auth)
	require.Empty(t, ids(body))
	require.EqualValues(t, 4, body["count"], "count is not affected by paging")

	_, body = get(t, srv, "/v3/tasks?enterprise_project_id=ep-a", auth)
	require.Equal(t, []string{"t1", "t2"}, ids(body))
	_, body = get(t, srv, "/v3/tasks?name=team-b-web", auth)
	require.Equal(t, []string{"t3"}, ids(body))
	_, body = get(t, srv, "/v3/tasks?state=SYNCING", auth)
	require.Equal(t, []string{"t2"}, ids(body))
	resp, _ = get(t, srv, "/v3/tasks?limit=201", auth)
	require.Equal(t, 400, resp.StatusCode)

	// Moving a task to another enterprise project shows at once.
	s.SetTaskMeta("t1", TaskMeta{Name: "team-a-web", EnterpriseProjectID: "ep-b", State: "READY"})
	_, body = get(t, srv, "/v3/tasks?enterprise_project_id=ep-b", auth)
	require.Equal(t, []string{"t1", "t3"}, ids(body))

	// A fault can target one call only.
	require.NoError(t, s.AddFault(Fault{Mode: FaultStatus, Status: 503, Call: "task", Times: 1}))
	resp, _ = get(t, srv, "/v3/tasks/t2/passphrase", auth)
	require.Equal(t, 200, resp.StatusCode)
	resp, _ = get(t, srv, "/v3/tasks/t2", auth)
	require.Equal(t, 503, resp.StatusCode)
	st := s.Stats()
	require.EqualValues(t, 5, st.TaskRequests)
	require.EqualValues(t, 8, st.ListRequests)
}
