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
//	PUT    /__fake/identity-providers/{id}  an IdentityProvider (JWKS included), added or replaced
//	DELETE /__fake/identity-providers/{id}
//	PUT    /__fake/agencies/{domain}/{name} an Agency, added or replaced
//	DELETE /__fake/agencies/{domain}/{name}
//	PUT    /__fake/permissions/{domain}/{name}  an IAM user's Permissions (null: everything)
//	GET    /__fake/calls           the trace of SMS calls (Call), oldest first
//	DELETE /__fake/calls           empties the trace
//	POST   /__fake/expire-temporary-keys  ends every temporary credential from securitytokens
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
	case s.serveIdentityControl(w, r, path, body):
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control path"})
	}
}

// serveIdentityControl serves the control paths of identity providers,
// agencies, policies and the call trace; it reports whether path was one.
func (s *Server) serveIdentityControl(w http.ResponseWriter, r *http.Request, path string, body []byte) bool {
	done := func(err error) {
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	put := r.Method == http.MethodPut
	del := r.Method == http.MethodDelete
	domain, name, twoParts := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(path, "agencies/"), "permissions/"), "/")
	switch {
	case strings.HasPrefix(path, "identity-providers/") && put:
		var p IdentityProvider
		if err := json.Unmarshal(body, &p); err != nil {
			done(err)
			return true
		}
		p.ID = strings.TrimPrefix(path, "identity-providers/")
		done(s.SetIdentityProvider(p))
	case strings.HasPrefix(path, "identity-providers/") && del:
		s.DeleteIdentityProvider(strings.TrimPrefix(path, "identity-providers/"))
		done(nil)
	case strings.HasPrefix(path, "agencies/") && twoParts && put:
		var a Agency
		if err := json.Unmarshal(body, &a); err != nil {
			done(err)
			return true
		}
		a.Domain, a.Name = domain, name
		done(s.SetAgency(a))
	case strings.HasPrefix(path, "agencies/") && twoParts && del:
		s.DeleteAgency(domain, name)
		done(nil)
	case strings.HasPrefix(path, "permissions/") && twoParts && put:
		var p *Permissions
		if err := json.Unmarshal(body, &p); err != nil {
			done(err)
			return true
		}
		s.SetPermissions(domain, name, p)
		done(nil)
	case path == "calls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Calls())
	case path == "calls" && del:
		s.ClearCalls()
		done(nil)
	case path == "expire-temporary-keys" && r.Method == http.MethodPost:
		s.ExpireTemporaryKeys()
		done(nil)
	default:
		return false
	}
	return true
}
