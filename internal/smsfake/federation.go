package smsfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
)

const (
	idTokenPath = "/v3.0/OS-AUTH/id-token/tokens" //nolint:gosec // G101: an API path, not a credential
	callIDToken = "id-token"
)

// IdentityProvider is an OpenID Connect identity provider configured in an
// account's IAM (protocol OIDC, programmatic access), as huawei-apis.md 6b
// describes: IAM trusts ID tokens that its keys sign, from its issuer, for
// one of its client IDs, and maps them to a federated user.
type IdentityProvider struct {
	ID string `json:"id"`
	// Domain is the account (domain name) the provider belongs to, and so
	// the federated users it maps.
	Domain    string   `json:"domain"`
	Issuer    string   `json:"issuer"`
	ClientIDs []string `json:"client_ids"`
	// JWKS is the signing keys' JWKS document, pasted into IAM.
	JWKS json.RawMessage `json:"jwks"`
	// Subjects are the "sub" claims the mapping rules match; empty matches
	// every subject. No match is IAM's 403.
	Subjects []string `json:"subjects,omitempty"`
	// Permissions are the mapped federated user's (its user groups'); nil
	// allows everything.
	Permissions *Permissions `json:"permissions,omitempty"`
}

type idProvider struct {
	IdentityProvider
	keys jwks
}

// SetIdentityProvider adds or replaces an identity provider.
func (s *Server) SetIdentityProvider(p IdentityProvider) error {
	if p.ID == "" || p.Domain == "" || p.Issuer == "" || len(p.ClientIDs) == 0 {
		return fmt.Errorf("an identity provider needs id, domain, issuer and client_ids")
	}
	keys, err := parseJWKS(p.JWKS)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idps[p.ID] = &idProvider{IdentityProvider: p, keys: keys}
	return nil
}

// DeleteIdentityProvider removes one; ID tokens for it are then refused
// with IAM's 404.
func (s *Server) DeleteIdentityProvider(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.idps, id)
}

type idTokenRequest struct {
	Auth struct {
		IDToken *struct {
			ID string `json:"id"`
		} `json:"id_token"`
		Scope *struct {
			Domain  *scopeRef `json:"domain"`
			Project *scopeRef `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

type scopeRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// The name IAM gives a federated user: the mapping rule of the stand-in
// takes the subject, keeping the characters a user name may hold.
var notNameChar = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// idTokenReply is POST /v3.0/OS-AUTH/id-token/tokens: 201 with a token in
// X-Subject-Token, 400 for a malformed request or ID token, 401 for a
// signature, issuer, audience or validity that is wrong, 403 when no mapping
// rule matches, 404 for an unknown identity provider.
func (s *Server) idTokenReply(r *http.Request) reply {
	if r.Method != http.MethodPost {
		return iamError(http.StatusMethodNotAllowed, "", "The method is not allowed.")
	}
	idpID := r.Header.Get("X-Idp-Id")
	if idpID == "" {
		return iamError(http.StatusBadRequest, "", "The request header X-Idp-Id is missing.")
	}
	var req idTokenRequest
	if err := json.Unmarshal(bodyOf(r), &req); err != nil || req.Auth.IDToken == nil || req.Auth.IDToken.ID == "" {
		return iamError(http.StatusBadRequest, "", "The request body is invalid.")
	}
	s.mu.Lock()
	idp := s.idps[idpID]
	s.mu.Unlock()
	if idp == nil {
		return iamError(http.StatusNotFound, "", "Could not find the identity provider.")
	}
	now := s.now()
	claims, err := verifyIDToken(req.Auth.IDToken.ID, idp.keys, idp.Issuer, idp.ClientIDs, now)
	if err != nil {
		s.mu.Lock()
		s.stats.IAMLoginFailures++
		s.mu.Unlock()
		var te *tokenError
		if !errors.As(err, &te) {
			return iamError(http.StatusInternalServerError, "", "The ID token could not be checked.")
		}
		return iamError(te.status, "", "The ID token is refused: "+te.msg+".")
	}
	if len(idp.Subjects) > 0 && !slices.Contains(idp.Subjects, claims.Subject) {
		return iamError(http.StatusForbidden, "", "No mapping rule of the identity provider matches the ID token.")
	}
	scope := map[string]string{}
	if sc := req.Auth.Scope; sc != nil {
		ref, key := sc.Domain, "domain"
		if sc.Project != nil {
			ref, key = sc.Project, "project"
		}
		if ref == nil || (ref.ID == "") == (ref.Name == "") {
			return iamError(http.StatusBadRequest, "", "The scope must name one domain or project, by id or name.")
		}
		if key == "domain" && ref.ID != DomainID(idp.Domain) && ref.Name != idp.Domain {
			return iamError(http.StatusUnauthorized, "", "The federated user has no access to the requested domain.")
		}
		scope = map[string]string{"key": key, "id": ref.ID, "name": ref.Name}
	}

	user := userRef{domain: idp.Domain, name: "fed-" + notNameChar.ReplaceAllString(claims.Subject, "_")}
	token := s.newIAMToken()
	issued := now.UTC()
	expires := issued.Add(s.opts.TokenLifetime)
	s.mu.Lock()
	s.issued[token] = expires
	s.tokenOwner[token] = user
	s.federatedPerms[user] = idp.Permissions
	s.federatedUsers[user] = idp.ID
	s.everIssued = append(s.everIssued, token)
	s.stats.IAMTokensIssued++
	s.mu.Unlock()

	body := map[string]any{
		"methods":    []string{"mapped"},
		"issued_at":  issued.Format(createTimeFormat),
		"expires_at": expires.Format(createTimeFormat),
		"user": map[string]any{
			"id": UserID(user.domain, user.name), "name": user.name,
			"domain": map[string]string{"id": DomainID(user.domain), "name": user.domain},
			"OS-FEDERATION": map[string]any{
				"identity_provider": map[string]string{"id": idp.ID},
				"protocol":          map[string]string{"id": "oidc"},
				"groups":            []any{},
			},
		},
		"roles":   []any{},
		"catalog": []any{},
	}
	if scope["key"] != "" {
		body[scope["key"]] = map[string]string{"id": scope["id"], "name": scope["name"]}
	}
	rep := jsonReply(http.StatusCreated, map[string]any{"token": body})
	rep.header.Set("X-Subject-Token", token)
	return rep
}
