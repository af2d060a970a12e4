package smsfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"
)

const (
	securityTokensPath = "/v3.0/OS-CREDENTIAL/securitytokens" //nolint:gosec // G101: an API path, not a credential
	callSecurityToken  = "security-token"
)

// Agency is an IAM agency of a delegating account: the accounts it trusts
// may assume it (with the Agent Operator right) and then act with its
// policy, as huawei-apis.md 6 and 6a describe.
type Agency struct {
	Name string `json:"name"`
	// Domain is the delegating account's name; DomainID(Domain) its ID.
	Domain string `json:"domain"`
	// Trusted are the names of the accounts whose identities may assume it.
	Trusted []string `json:"trusted"`
	// Permissions is the policy attached to the agency; nil allows
	// everything.
	Permissions *Permissions `json:"permissions,omitempty"`
	// MaxDuration caps duration_seconds below IAM's 24 hours; 0: no cap.
	MaxDuration Duration `json:"max_duration,omitempty"`
}

// SetAgency adds or replaces an agency.
func (s *Server) SetAgency(a Agency) error {
	if a.Name == "" || a.Domain == "" {
		return fmt.Errorf("an agency needs a name and a domain")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agencies[a.Domain+"/"+a.Name] = &a
	return nil
}

// DeleteAgency removes an agency: its temporary credentials stop working,
// as they do in IAM when the agency goes.
func (s *Server) DeleteAgency(domain, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.agencies, domain+"/"+name)
}

// agencyLocked finds an agency by its account's name or ID. The caller
// holds s.mu.
func (s *Server) agencyLocked(domain, name string) *Agency {
	if a := s.agencies[domain+"/"+name]; a != nil {
		return a
	}
	for _, a := range s.agencies {
		if a.Name == name && DomainID(a.Domain) == domain {
			return a
		}
	}
	return nil
}

// ExpireTemporaryKeys ends every temporary credential obtained from
// securitytokens, as their expires_at passing would.
func (s *Server) ExpireTemporaryKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for ak, k := range s.tempKeys {
		if !k.expires.IsZero() {
			k.expires = past
			s.tempKeys[ak] = k
		}
	}
}

type securityTokenRequest struct {
	Auth struct {
		Identity struct {
			Methods []string `json:"methods"`
			Token   *struct {
				DurationSeconds *int `json:"duration_seconds"`
			} `json:"token"`
			AssumeRole *struct {
				AgencyName      string `json:"agency_name"`
				DomainID        string `json:"domain_id"`
				DomainName      string `json:"domain_name"`
				DurationSeconds *int   `json:"duration_seconds"`
				SessionUser     *struct {
					Name string `json:"name"`
				} `json:"session_user"`
			} `json:"assume_role"`
		} `json:"identity"`
	} `json:"auth"`
}

var sessionUserName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{4,63}$`)

// securityTokenReply is POST /v3.0/OS-CREDENTIAL/securitytokens: temporary
// AK/SK and a security token, for the caller itself (method token) or for an
// agency (method assume_role). 201, or 400 for a malformed request or a
// duration out of bounds, 401 for a caller IAM does not know, 403 for a
// caller without the Agent Operator right or an agency that does not trust
// its account, 404 for an agency that does not exist.
func (s *Server) securityTokenReply(r *http.Request) reply {
	if r.Method != http.MethodPost {
		return iamError(http.StatusMethodNotAllowed, "", "The method is not allowed.")
	}
	who, msg := s.whoIs(r)
	if who.kind == "" {
		return iamError(http.StatusUnauthorized, "", msg)
	}
	var req securityTokenRequest
	if err := json.Unmarshal(bodyOf(r), &req); err != nil {
		return iamError(http.StatusBadRequest, "", "The request body is invalid.")
	}
	id := req.Auth.Identity
	duration := 900
	var grantee principal
	switch {
	case slices.Equal(id.Methods, []string{"token"}) && id.Token != nil:
		if who.kind == "token" || who.kind == "agency" {
			return iamError(http.StatusForbidden, "", "You are not authorized to perform the requested action.")
		}
		if id.Token.DurationSeconds != nil {
			duration = *id.Token.DurationSeconds
		}
		grantee = who
	case slices.Equal(id.Methods, []string{"assume_role"}) && id.AssumeRole != nil:
		ar := id.AssumeRole
		if ar.AgencyName == "" || (ar.DomainID == "") == (ar.DomainName == "") {
			return iamError(http.StatusBadRequest, "", "assume_role needs agency_name and one of domain_id and domain_name.")
		}
		if ar.SessionUser != nil && !sessionUserName.MatchString(ar.SessionUser.Name) {
			return iamError(http.StatusBadRequest, "", "session_user.name must be 5 to 64 characters: a letter, then letters, digits, - and _.")
		}
		if ar.DurationSeconds != nil {
			duration = *ar.DurationSeconds
		}
		s.mu.Lock()
		operator := who.kind == "user" || who.kind == "federated"
		operator = operator && s.permissionsOf(who).agentOperator()
		domain := ar.DomainName
		if domain == "" {
			domain = ar.DomainID
		}
		agency := s.agencyLocked(domain, ar.AgencyName)
		var a Agency
		if agency != nil {
			a = *agency
		}
		s.mu.Unlock()
		switch {
		case !operator:
			return iamError(http.StatusForbidden, "", "You are not authorized to perform the requested action: assuming an agency needs the Agent Operator permission.")
		case agency == nil:
			return iamError(http.StatusNotFound, "", "Could not find the agency.")
		case !slices.Contains(a.Trusted, who.domain):
			return iamError(http.StatusForbidden, "", "The agency does not trust your account.")
		case a.MaxDuration > 0 && time.Duration(duration)*time.Second > time.Duration(a.MaxDuration):
			return iamError(http.StatusBadRequest, "", "duration_seconds is longer than the agency allows.")
		}
		grantee = principal{kind: "agency", domain: a.Domain, name: a.Name}
		if ar.SessionUser != nil {
			grantee.session = ar.SessionUser.Name
		}
	default:
		return iamError(http.StatusBadRequest, "", "The request body is invalid: methods must be [\"token\"] or [\"assume_role\"] with its object.")
	}
	if duration < 900 || duration > 86400 {
		return iamError(http.StatusBadRequest, "", "duration_seconds must be 900 to 86400.")
	}

	expires := s.now().UTC().Add(time.Duration(duration) * time.Second).Truncate(time.Microsecond)
	secret := randomString(40, lettersDigits)
	token := s.newIAMToken()
	s.mu.Lock()
	access := randomString(20, upperDigits)
	for s.keys[access] != nil || s.tempKeys[access].secret != "" {
		access = randomString(20, upperDigits)
	}
	s.tempKeys[access] = tempKey{secret: secret, token: token, expires: expires, who: grantee}
	s.everIssued = append(s.everIssued, secret, token)
	s.mu.Unlock()
	return jsonReply(http.StatusCreated, map[string]any{"credential": map[string]string{
		"access": access, "secret": secret, "securitytoken": token, "expires_at": expires.Format(createTimeFormat),
	}})
}

// whoIs identifies the caller of an SMS or IAM call by its X-Auth-Token or
// its AK/SK signature; an unknown caller has kind "" and IAM's reason.
func (s *Server) whoIs(r *http.Request) (principal, string) {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.tokens[tok] {
			return principal{kind: "token"}, ""
		}
		exp, ok := s.issued[tok]
		if !ok {
			return principal{}, "Incorrect IAM authentication information: the token is invalid."
		}
		if !s.now().Before(exp) {
			return principal{}, "Incorrect IAM authentication information: the token expired."
		}
		owner := s.tokenOwner[tok]
		if _, federated := s.federatedUsers[owner]; federated {
			return principal{kind: "federated", domain: owner.domain, name: owner.name}, ""
		}
		return principal{kind: "user", domain: owner.domain, name: owner.name}, ""
	}
	if r.Header.Get("Authorization") == "" {
		return principal{}, "Incorrect IAM authentication information: no X-Auth-Token or Authorization header."
	}
	_, owner, err := s.verifySignatureAs(r)
	if err != nil {
		return principal{}, "Incorrect IAM authentication information: " + err.Error()
	}
	access, _, _, _ := parseAuthorization(r.Header.Get("Authorization"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.tempKeys[access]; ok && k.who.kind != "" {
		return k.who, ""
	}
	return principal{kind: "user", domain: owner.domain, name: owner.name}, ""
}
