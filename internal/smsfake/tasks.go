package smsfake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// TaskMeta is what ShowTask and ListTasks report of a task besides its id.
type TaskMeta struct {
	Name                string `json:"name"`
	EnterpriseProjectID string `json:"enterprise_project_id"`
	State               string `json:"state"`
}

// metaOf returns a task's metadata and whether the task exists. The caller
// holds s.mu.
func (s *Server) metaOf(id string) (TaskMeta, bool) {
	_, ok := s.tasks[id]
	anyTask := s.opts.AnyTask && validTaskID(id)
	if !ok && !anyTask {
		return TaskMeta{}, false
	}
	m, has := s.meta[id]
	if !has {
		m = TaskMeta{Name: id, EnterpriseProjectID: "0", State: "READY"}
		if !ok {
			m.Name = "any-" + id
		}
	}
	return m, true
}

// taskBody is a task as ShowTask answers it: the fields the reference
// documents, most of them filled with plausible values.
func taskBody(id string, m TaskMeta) map[string]any {
	return map[string]any{
		"id": id, "name": m.Name, "type": "MIGRATE_BLOCK", "os_type": "LINUX", "state": m.State,
		"enterprise_project_id": m.EnterpriseProjectID, "priority": 1, "speed_limit": 0,
		"create_date": 1767225600000, "connected": true, "region_id": "ap-southeast-1",
		"project_id":    "0a1b2c3d4e5f40718293a4b5c6d7e8f9",
		"source_server": map[string]any{"id": "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586", "ip": "10.0.0.5", "name": m.Name + "-src", "os_type": "LINUX", "state": "syncing"},
		"target_server": map[string]any{"vm_id": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e", "name": m.Name + "-tgt", "ip": "192.168.0.10", "disks": []any{}},
		"sub_tasks":     []any{map[string]any{"id": 101, "name": "CREATE_CLOUD_SERVER", "progress": 40, "start_date": 1767226000000}},
	}
}

// taskReply is the normal answer of GET /v3/tasks/{task_id} (ShowTask).
func (s *Server) taskReply(r *http.Request, taskID string) reply {
	if _, refusal := s.authorized(r, callTask, taskID); refusal != nil {
		return *refusal
	}
	s.mu.Lock()
	m, ok := s.metaOf(taskID)
	s.mu.Unlock()
	if !ok {
		return smsError(http.StatusNotFound, "SMS.1801", "The task does not exist.")
	}
	return jsonReply(http.StatusOK, taskBody(taskID, m))
}

// listReply is the normal answer of GET /v3/tasks (ListTasks): the tasks
// matching the filters, ordered by id, paged by limit and offset, with the
// count of all matching tasks.
func (s *Server) listReply(r *http.Request, _ string) reply {
	who, refusal := s.authorized(r, callTasks, "")
	if refusal != nil {
		return *refusal
	}
	q := r.URL.Query()
	intParam := func(name string, def, max int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 0 && n <= max
	}
	limit, okLimit := intParam("limit", 100, 200)
	offset, okOffset := intParam("offset", 0, 65535)
	if !okLimit || !okOffset {
		return smsError(http.StatusBadRequest, "SMS.0201", "Invalid request: limit must be 0 to 200 and offset 0 to 65535.")
	}
	ep, name, state := q.Get("enterprise_project_id"), q.Get("name"), q.Get("state")

	s.mu.Lock()
	// A policy limited to enterprise projects lists only their tasks.
	perms := s.permissionsOf(who)
	ids := make([]string, 0, len(s.tasks))
	for id := range s.tasks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var matching []map[string]any
	for _, id := range ids {
		m, _ := s.metaOf(id)
		if !perms.inProject(m.EnterpriseProjectID) || (q.Has("enterprise_project_id") && m.EnterpriseProjectID != ep) || (name != "" && m.Name != name) || (state != "" && m.State != state) {
			continue
		}
		item := taskBody(id, m)
		delete(item, "region_id") // list items carry fewer fields than ShowTask
		delete(item, "project_id")
		delete(item, "connected")
		item["log_collect_status"] = "INIT"
		item["syncing"] = strings.EqualFold(m.State, "SYNCING")
		matching = append(matching, item)
	}
	s.mu.Unlock()

	page := []map[string]any{}
	if offset < len(matching) {
		page = matching[offset:min(offset+limit, len(matching))]
	}
	return jsonReply(http.StatusOK, map[string]any{"count": len(matching), "tasks": page})
}
