package smsfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

type tokenRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Domain struct {
				Name string `json:"name"`
			} `json:"domain"`
		} `json:"scope"`
	} `json:"auth"`
}

// serveIAMCall answers one of IAM's calls (the token, or a self-service
// call): counts it, applies any fault, and otherwise the call's normal answer.
func (s *Server) serveIAMCall(w http.ResponseWriter, r *http.Request, call string, normal func(*http.Request) reply) {
	s.mu.Lock()
	if call == callToken {
		s.stats.IAMTokenRequests++
	} else {
		s.stats.IAMKeyCalls[call]++
	}
	fault := s.takeFault("iam", call, "")
	s.mu.Unlock()
	if fault != nil {
		s.countFault()
	}
	if fault != nil && fault.Mode == FaultApplyLate {
		s.applyLate(w, r, fault, normal)
		return
	}
	if !fault.before(w, r) {
		return
	}
	var rep reply
	if !fault.replaces() {
		rep = normal(r)
	}
	fault.deliver(w, r, fault.apply(r, call, rep, "", iamError, s.now()))
}

// applyLate answers a FaultApplyLate request: its Status at once if it has
// one, else nothing until the client leaves; then, Delay later, the request
// is carried out. The handler waits for it, so that a test that closes the
// stand-in sees every late change applied or never started.
func (s *Server) applyLate(w http.ResponseWriter, r *http.Request, f *Fault, normal func(*http.Request) reply) {
	if f.Status != 0 && (f.Status < 200 || f.Status > 299) {
		code, msg := standardError(f.Status)
		(*Fault)(nil).deliver(w, r, iamError(f.Status, code, msg))
		flush(w)
	} else {
		<-r.Context().Done()
	}
	time.Sleep(time.Duration(f.Delay))
	normal(r)
	s.mu.Lock()
	s.stats.IAMAppliedLate++
	s.mu.Unlock()
}

// tokenReply is POST /v3/auth/tokens with the password method: 201 with the
// token in X-Subject-Token, or 401 for a wrong user, password or domain, or a
// user locked out after too many failures.
func (s *Server) tokenReply(r *http.Request) reply {
	if r.Method != http.MethodPost {
		return iamError(http.StatusMethodNotAllowed, "", "The method is not allowed.")
	}
	var req tokenRequest
	if err := json.Unmarshal(bodyOf(r), &req); err != nil {
		return iamError(http.StatusBadRequest, "", "The request body is invalid.")
	}
	id := req.Auth.Identity
	user := id.Password.User
	if len(id.Methods) != 1 || id.Methods[0] != "password" || req.Auth.Scope.Domain.Name != user.Domain.Name {
		return iamError(http.StatusBadRequest, "", "The request body is invalid.")
	}
	if msg, ok := s.login(user.Domain.Name, user.Name, user.Password); !ok {
		return iamError(http.StatusUnauthorized, "", msg)
	}

	token := s.newIAMToken()
	issued := s.now().UTC()
	expires := issued.Add(s.opts.TokenLifetime)

	s.mu.Lock()
	pwExpires := ""
	if i := s.userIndex(userRef{domain: user.Domain.Name, name: user.Name}); i >= 0 && !s.users[i].PasswordExpires.IsZero() {
		pwExpires = s.users[i].PasswordExpires.UTC().Format("2006-01-02T15:04:05.000000") // IAM's documented form: UTC, no zone
	}
	s.issued[token] = expires
	s.tokenOwner[token] = userRef{domain: user.Domain.Name, name: user.Name}
	s.everIssued = append(s.everIssued, token)
	s.stats.IAMTokensIssued++
	s.mu.Unlock()

	rep := jsonReply(http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"issued_at":  issued.Format(time.RFC3339Nano),
		"expires_at": expires.Format(time.RFC3339Nano),
		"user": map[string]any{
			"id": UserID(user.Domain.Name, user.Name), "name": user.Name, "password_expires_at": pwExpires,
			"domain": map[string]string{"id": DomainID(user.Domain.Name), "name": user.Domain.Name},
		},
		"domain": map[string]string{"id": DomainID(user.Domain.Name), "name": user.Domain.Name},
	}})
	rep.header.Set("X-Subject-Token", token)
	return rep
}

// login checks a user's password the way IAM's login protection does: after
// LockoutAfter consecutive failures the user is refused for LockoutDuration,
// whatever the password.
func (s *Server) login(domain, name, password string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := domain + "/" + name
	if until, locked := s.lockedUntil[key]; locked {
		if s.now().Before(until) {
			s.stats.IAMLoginFailures++
			return "The user is locked because of too many failed logins.", false
		}
		delete(s.lockedUntil, key)
	}
	for _, u := range s.users {
		// A user without a password (an implicit key owner) cannot log in.
		if u.Domain == domain && u.Name == name && u.Password != "" && u.Password == password {
			s.failedLogins[key] = 0
			return "", true
		}
	}
	s.stats.IAMLoginFailures++
	s.failedLogins[key]++
	if s.opts.LockoutAfter > 0 && s.failedLogins[key] >= s.opts.LockoutAfter {
		s.lockedUntil[key] = s.now().Add(s.opts.LockoutDuration)
		s.stats.IAMLockouts++
		s.failedLogins[key] = 0
	}
	return "The username or password is wrong.", false
}

// newIAMToken makes a token of TokenSize characters, about what a real IAM
// (PKI) token measures.
func (s *Server) newIAMToken() string {
	raw := make([]byte, s.opts.TokenSize*3/4+3)
	_, _ = rand.Read(raw)
	return ("MIIfake" + base64.RawURLEncoding.EncodeToString(raw))[:s.opts.TokenSize]
}
