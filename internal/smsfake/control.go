package smsfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// serveControl is the stand-in's control API, for tests that run it as a
// separate process:
//
//	GET    /__fake/stats           counters (Stats)
//	DELETE /__fake/stats           zero the counters
//	PUT    /__fake/tasks/{id}      {"passphrase": "...", "name", "enterprise_project_id", "state"}
//	                               creates or changes a task (the metadata fields are optional)
//	DELETE /__fake/tasks/{id}      removes a task
//	POST   /__fake/tasks/{id}/rotate-certkey  new certificates and keys for a task
//	POST   /__fake/faults          a Fault, queued
//	DELETE /__fake/faults          removes every fault
//	POST   /__fake/revoke-tokens   invalidates every IAM token issued so far
//	PUT    /__fake/latency         {"latency": "5ms"}
//	GET    /__fake/keys?domain=&name=  a user's permanent access keys (KeyInfo), oldest first, without secrets
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/__fake/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	bad := func(msg string) { writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg}) }

	switch {
	case path == "stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
	case path == "stats" && r.Method == http.MethodDelete:
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "tasks/") && strings.HasSuffix(path, "/rotate-certkey") && r.Method == http.MethodPost:
		s.RotateCertKey(strings.TrimSuffix(strings.TrimPrefix(path, "tasks/"), "/rotate-certkey"))
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "tasks/") && r.Method == http.MethodPut:
		var v struct {
			Passphrase string `json:"passphrase"`
			TaskMeta
		}
		if err := json.Unmarshal(body, &v); err != nil {
			bad("body must be {\"passphrase\": \"...\", \"name\": ..., \"enterprise_project_id\": ..., \"state\": ...}")
			return
		}
		id := strings.TrimPrefix(path, "tasks/")
		s.SetTask(id, v.Passphrase)
		if v.TaskMeta != (TaskMeta{}) {
			s.SetTaskMeta(id, v.TaskMeta)
		}
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "tasks/") && r.Method == http.MethodDelete:
		s.DeleteTask(strings.TrimPrefix(path, "tasks/"))
		w.WriteHeader(http.StatusNoContent)
	case path == "faults" && r.Method == http.MethodPost:
		var f Fault
		if err := json.Unmarshal(body, &f); err != nil {
			bad(err.Error())
			return
		}
		if err := s.AddFault(f); err != nil {
			bad(err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case path == "revoke-tokens" && r.Method == http.MethodPost:
		s.RevokeTokens()
		w.WriteHeader(http.StatusNoContent)
	case path == "keys" && r.Method == http.MethodGet:
		keys := s.Keys(r.URL.Query().Get("domain"), r.URL.Query().Get("name"))
		for i := range keys {
			keys[i].Secret = ""
		}
		writeJSON(w, http.StatusOK, keys)
	case path == "latency" && r.Method == http.MethodPut:
		var v struct {
			Latency Duration `json:"latency"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			bad(err.Error())
			return
		}
		s.SetLatency(timeDuration(v.Latency))
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control path"})
	}
}
