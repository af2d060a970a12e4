package smsfake

import (
	"net/http"
	"path"
	"slices"
	"time"
)

// Permissions is what an identity may do: the IAM policy of a user, of a
// federated user (through the identity provider's mapping) or of an agency.
// A nil *Permissions allows everything, which is how the stand-in treated
// every identity before it knew of policies.
type Permissions struct {
	// Actions the identity may call, with * as a wildcard inside a part:
	// "sms:server:getTaskPassphrase", "sms:server:*", "sms:*:*". The SMS
	// actions are those of huawei-apis.md section 7.
	Actions []string `json:"actions"`
	// EnterpriseProjects limits the SMS actions to tasks in these enterprise
	// projects (the g:EnterpriseProjectId condition); empty: every project.
	EnterpriseProjects []string `json:"enterprise_projects"`
	// AgentOperator is the right to assume agencies (assume_role).
	AgentOperator bool `json:"agent_operator"`
}

// The SMS action of each call the stand-in serves.
var smsActions = map[string]string{ //nolint:gosec // G101: IAM action names, not credentials
	callPassphrase: "sms:server:getTaskPassphrase",
	callTask:       "sms:server:getTask",
	callTasks:      "sms:server:listTask",
	callCertKey:    "sms:server:getCert",
}

func (p *Permissions) allows(action string) bool {
	if p == nil {
		return true
	}
	return slices.ContainsFunc(p.Actions, func(pattern string) bool {
		ok, _ := path.Match(pattern, action)
		return ok || pattern == "*"
	})
}

func (p *Permissions) inProject(ep string) bool {
	return p == nil || len(p.EnterpriseProjects) == 0 || slices.Contains(p.EnterpriseProjects, ep)
}

func (p *Permissions) agentOperator() bool { return p == nil || p.AgentOperator }

// principal is who made a call, as Cloud Trace Service records it.
type principal struct {
	// kind is "token" (a static token: no identity), "user" (an IAM user,
	// by password token or permanent key), "federated" (a user mapped from
	// an ID token) or "agency" (temporary credentials of an agency).
	kind   string
	domain string
	// name is the user's name, or the agency's.
	name string
	// session is the session_user name given to assume_role.
	session string
}

// permissionsOf is the policy that applies to p. The caller holds s.mu.
func (s *Server) permissionsOf(p principal) *Permissions {
	switch p.kind {
	case "user":
		return s.userPerms[p.domain+"/"+p.name]
	case "federated":
		return s.federatedPerms[userRef{domain: p.domain, name: p.name}]
	case "agency":
		if a := s.agencyLocked(p.domain, p.name); a != nil {
			return a.Permissions
		}
		return &Permissions{}
	}
	return nil
}

// SetPermissions sets an IAM user's policy; nil allows everything again.
func (s *Server) SetPermissions(domain, name string, p *Permissions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == nil {
		delete(s.userPerms, domain+"/"+name)
		return
	}
	s.userPerms[domain+"/"+name] = p
}

// permitted is the SMS gateway's policy check of a call on a task (taskID
// empty for ListTasks): nil, or SMS's 403. A task that does not exist is
// refused, not reported missing, when the policy is limited to projects: the
// gateway cannot show that it is in one of them.
func (s *Server) permitted(p principal, call, taskID string) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	perms := s.permissionsOf(p)
	action := smsActions[call]
	ok := perms.allows(action)
	if ok && taskID != "" && perms != nil && len(perms.EnterpriseProjects) > 0 {
		m, exists := s.metaOf(taskID)
		ok = exists && perms.inProject(m.EnterpriseProjectID)
	}
	if ok {
		return nil
	}
	rep := jsonReply(http.StatusForbidden, map[string]any{
		"error_code":                    "SMS.9004",
		"error_msg":                     "The current account does not have the permission to execute policy. You do not have permission to perform action " + action + " on resource.",
		"encoded_authorization_message": "ENCODED-AUTHZ-" + action,
		"error_param":                   []string{"You do not have permission to perform action " + action + " on resource."},
		"details":                       []map[string]string{{"error_code": "SMS.9004", "error_msg": "Policy doesn't allow " + action + " to be performed."}},
	})
	return &rep
}

// Call is one SMS call as the stand-in's trace (its Cloud Trace Service)
// records it: who made it and what came of it.
type Call struct {
	Time time.Time `json:"time"`
	// Call is passphrase, task, tasks or certkey.
	Call   string `json:"call"`
	TaskID string `json:"task_id,omitempty"`
	// Kind, Domain, Name and Session name the identity: Kind is token,
	// user, federated or agency; for an agency, Name is the agency and
	// Session the session_user name given to assume_role. Kind is empty
	// when the call's credentials were refused.
	Kind    string `json:"kind,omitempty"`
	Domain  string `json:"domain,omitempty"`
	Name    string `json:"name,omitempty"`
	Session string `json:"session,omitempty"`
	Status  int    `json:"status"`
}

// Calls returns the trace of SMS calls, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// ClearCalls empties the trace.
func (s *Server) ClearCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// maxCalls bounds the trace, oldest calls dropped first, so that load tests
// cannot grow it without end.
const maxCalls = 100000

// callNote carries, through a request's context, the identity the SMS
// handler found, so that serveSMS can record it with the final status.
type callNote struct{ who principal }

type callNoteKey struct{}

func noteOf(r *http.Request) *callNote {
	n, _ := r.Context().Value(callNoteKey{}).(*callNote)
	return n
}

func (s *Server) record(call, taskID string, who principal, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) >= maxCalls {
		s.calls = slices.Delete(s.calls, 0, len(s.calls)-maxCalls+1)
	}
	s.calls = append(s.calls, Call{Time: s.now().UTC(), Call: call, TaskID: taskID,
		Kind: who.kind, Domain: who.domain, Name: who.name, Session: who.session, Status: status})
}
