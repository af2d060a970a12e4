package smsfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
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

// serveIAMToken is POST /v3/auth/tokens with the password method: 201 with the
// token in X-Subject-Token, or 401 for a wrong user, password or domain.
func (s *Server) serveIAMToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.IAMTokenRequests++
	fault := s.takeFault("iam", "")
	s.mu.Unlock()
	if fault != nil {
		s.countFault()
		if fault.serve(w, r, "") {
			return
		}
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "APIGW.0102", "The method is not allowed.")
		return
	}

	var req tokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "IAM.0011", "Request body is invalid.")
		return
	}
	id := req.Auth.Identity
	user := id.Password.User
	if len(id.Methods) != 1 || id.Methods[0] != "password" || req.Auth.Scope.Domain.Name != user.Domain.Name || !s.knownUser(user.Domain.Name, user.Name, user.Password) {
		writeError(w, http.StatusUnauthorized, "IAM.0004", "The username or password is wrong.")
		return
	}

	var raw [96]byte
	_, _ = rand.Read(raw[:])
	token := "MIIfake" + base64.RawURLEncoding.EncodeToString(raw[:])
	issued := s.now().UTC()
	expires := issued.Add(s.opts.TokenLifetime)

	s.mu.Lock()
	s.issued[token] = expires
	s.stats.IAMTokensIssued++
	s.mu.Unlock()

	w.Header().Set("X-Subject-Token", token)
	writeJSON(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"issued_at":  issued.Format(time.RFC3339Nano),
		"expires_at": expires.Format(time.RFC3339Nano),
		"user":       map[string]any{"name": user.Name, "domain": map[string]string{"name": user.Domain.Name}},
		"domain":     map[string]string{"name": user.Domain.Name},
	}})
}

func (s *Server) knownUser(domain, name, password string) bool {
	for _, u := range s.opts.Users {
		if u.Domain == domain && u.Name == name && u.Password == password {
			return true
		}
	}
	return false
}
