package smsfake

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The IAM calls the stand-in serves, as fault targets (Fault.Call with
// Target "iam") and as keys of Stats.IAMKeyCalls (all but the token).
const (
	callToken          = "token"
	callShowKey        = "show-key"
	callListKeys       = "list-keys"
	callCreateKey      = "create-key"
	callDeleteKey      = "delete-key"
	callChangePassword = "change-password"
)

const credentialsPath = "/v3.0/OS-CREDENTIAL/credentials" //nolint:gosec // G101: an API path, not a credential

// createTimeFormat is how IAM writes create_time: UTC, microseconds.
const createTimeFormat = "2006-01-02T15:04:05.000000Z"

// Defaults of the owner of Options.AccessKeys when nothing names one.
const (
	implicitKeyDomain = "key-domain"
	implicitKeyUser   = "key-user"
)

// UserID is the IAM user ID the stand-in gives a user: the first 32 hex
// characters of sha256(domain + "/" + name).
func UserID(domain, name string) string { return hexID(domain + "/" + name) }

// DomainID is the IAM domain (account) ID the stand-in gives a domain: the
// first 32 hex characters of sha256("domain/" + domain).
func DomainID(domain string) string { return hexID("domain/" + domain) }

func hexID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:32]
}

// userRef names a user.
type userRef struct{ domain, name string }

func (u userRef) id() string { return UserID(u.domain, u.name) }

// accessKey is a permanent access key in the store.
type accessKey struct {
	access, secret string
	owner          userRef
	status         string
	description    string
	created        time.Time
	validFrom      time.Time
	seq            int64 // creation order, for keys created in the same instant
}

// tempKey is a temporary access key (one with a security token).
type tempKey struct {
	secret, token string
	owner         userRef
	// expires is when it stops working; zero for the keys of Options,
	// which never do.
	expires time.Time
	// who acts with it: an agency's session, or the user who asked for it.
	who principal
}

// KeyInfo is a permanent access key as tests see it.
type KeyInfo struct {
	Access      string    `json:"access"`
	Secret      string    `json:"secret,omitempty"`
	Status      string    `json:"status"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	// ValidFrom is when signatures with the key start being accepted.
	ValidFrom time.Time `json:"valid_from"`
}

// initIdentities sets up the users and the access-key store from the
// options. Called by New.
func (s *Server) initIdentities() {
	s.users = append([]User(nil), s.opts.Users...)
	s.tokenOwner = map[string]userRef{}
	s.keys = map[string]*accessKey{}
	s.tempKeys = map[string]tempKey{}

	owner := s.accessKeyOwner()
	created := s.now().UTC().Truncate(time.Microsecond)
	access := make([]string, 0, len(s.opts.AccessKeys))
	for ak := range s.opts.AccessKeys {
		access = append(access, ak)
	}
	sort.Strings(access)
	for _, ak := range access {
		sk := s.opts.AccessKeys[ak]
		if _, temporary := s.opts.SecurityTokens[ak]; temporary {
			s.tempKeys[ak] = tempKey{secret: sk, token: s.opts.SecurityTokens[ak], owner: owner,
				who: principal{kind: "user", domain: owner.domain, name: owner.name}}
			continue
		}
		s.keySeq++
		// Keys given at the start were valid long before: no activation delay.
		s.keys[ak] = &accessKey{access: ak, secret: sk, owner: owner, status: "active", created: created, seq: s.keySeq}
	}
}

// accessKeyOwner resolves Options.AccessKeyUser, adding an implicit user
// (without a password) when it names nobody in Users.
func (s *Server) accessKeyOwner() userRef {
	spec := s.opts.AccessKeyUser
	if spec == "" {
		if len(s.users) > 0 {
			return userRef{domain: s.users[0].Domain, name: s.users[0].Name}
		}
		spec = implicitKeyDomain + "/" + implicitKeyUser
	}
	domain, name, hasDomain := strings.Cut(spec, "/")
	if !hasDomain {
		domain, name = "", spec
	}
	for _, u := range s.users {
		if u.Name == name && (!hasDomain || u.Domain == domain) {
			return userRef{domain: u.Domain, name: u.Name}
		}
	}
	if !hasDomain {
		domain = implicitKeyDomain
	}
	s.users = append(s.users, User{Domain: domain, Name: name})
	return userRef{domain: domain, name: name}
}

// lookupKey returns the secret and the owner of an access key that may sign
// requests now.
func (s *Server) lookupKey(access string) (string, userRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[access]; ok {
		if k.status != "active" {
			return "", userRef{}, errors.New("the access key is inactive")
		}
		if s.now().Before(k.validFrom) {
			return "", userRef{}, errors.New("the access key is not yet valid")
		}
		return k.secret, k.owner, nil
	}
	if k, ok := s.tempKeys[access]; ok {
		return k.secret, k.owner, nil
	}
	return "", userRef{}, errors.New("the access key does not exist")
}

func (k *accessKey) info() KeyInfo {
	return KeyInfo{Access: k.access, Secret: k.secret, Status: k.status, Description: k.description,
		Created: k.created, ValidFrom: k.validFrom}
}

// keysOf returns a user's permanent keys in creation order. The caller
// holds s.mu.
func (s *Server) keysOf(u userRef) []*accessKey {
	var out []*accessKey
	for _, k := range s.keys {
		if k.owner == u {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].seq < out[j].seq
	})
	return out
}

// Keys returns a user's permanent access keys, oldest first, secrets
// included.
func (s *Server) Keys(domain, name string) []KeyInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.keysOf(userRef{domain: domain, name: name})
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = k.info()
	}
	return out
}

// KeyWorks reports whether a request signed with this access key and secret
// would be accepted now: the key exists (permanent or temporary), the secret
// is its secret, and it is active and valid.
func (s *Server) KeyWorks(access, secret string) bool {
	sk, _, err := s.lookupKey(access)
	return err == nil && sk == secret
}

// Password returns a user's current password ("" for an unknown user).
func (s *Server) Password(domain, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Domain == domain && u.Name == name {
			return u.Password
		}
	}
	return ""
}

// AddUser adds an IAM user, or sets the password of an existing one.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.users {
		if s.users[i].Domain == u.Domain && s.users[i].Name == u.Name {
			s.users[i].Password = u.Password
			return
		}
	}
	s.users = append(s.users, u)
}

// routeCredentials serves /v3.0/OS-CREDENTIAL/credentials[/{access_key}].
func (s *Server) routeCredentials(w http.ResponseWriter, r *http.Request, access string) {
	if strings.Contains(access, "/") {
		writeReply(w, smsError(http.StatusNotFound, "APIGW.0101", "The API does not exist or has not been published in the environment."))
		return
	}
	switch {
	case access == "" && r.Method == http.MethodGet:
		s.serveIAMCall(w, r, callListKeys, s.listKeysReply)
	case access == "" && r.Method == http.MethodPost:
		s.serveIAMCall(w, r, callCreateKey, s.createKeyReply)
	case access != "" && r.Method == http.MethodGet:
		s.serveIAMCall(w, r, callShowKey, func(r *http.Request) reply { return s.showKeyReply(r, access) })
	case access != "" && r.Method == http.MethodDelete:
		s.serveIAMCall(w, r, callDeleteKey, func(r *http.Request) reply { return s.deleteKeyReply(r, access) })
	default:
		writeReply(w, iamError(http.StatusMethodNotAllowed, "", "The method is not allowed."))
	}
}

// routePassword serves /v3/users/{user_id}/password.
func (s *Server) routePassword(w http.ResponseWriter, r *http.Request, userID string) {
	switch {
	case userID == "" || strings.Contains(userID, "/"):
		writeReply(w, smsError(http.StatusNotFound, "APIGW.0101", "The API does not exist or has not been published in the environment."))
	case r.Method != http.MethodPost:
		writeReply(w, iamError(http.StatusMethodNotAllowed, "", "The method is not allowed."))
	default:
		s.serveIAMCall(w, r, callChangePassword, func(r *http.Request) reply { return s.changePasswordReply(r, userID) })
	}
}

// iamCaller identifies the user making an IAM call, by an IAM token issued
// here or, unless tokenOnly, by an AK/SK signature. It returns IAM's refusal
// when it cannot.
func (s *Server) iamCaller(r *http.Request, tokenOnly bool) (userRef, *reply) {
	refuse := func(msg string) (userRef, *reply) {
		rep := iamError(http.StatusUnauthorized, "", msg)
		return userRef{}, &rep
	}
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		exp, ok := s.issued[tok]
		if !ok {
			return refuse("The request you have made requires authentication: the token is invalid.")
		}
		if !s.now().Before(exp) {
			return refuse("The request you have made requires authentication: the token expired.")
		}
		return s.tokenOwner[tok], nil
	}
	if tokenOnly {
		return refuse("The request you have made requires authentication: no X-Auth-Token.")
	}
	if r.Header.Get("Authorization") == "" {
		return refuse("The request you have made requires authentication: no X-Auth-Token or Authorization header.")
	}
	_, owner, err := s.verifySignatureAs(r)
	if err != nil {
		return refuse("Incorrect IAM authentication information: " + err.Error())
	}
	return owner, nil
}

func forbidden() reply {
	return iamError(http.StatusForbidden, "", "You are not authorized to perform the requested action.")
}

func keyNotFound() reply {
	return iamError(http.StatusNotFound, "", "Could not find the access key.")
}

// showKeyReply is GET /v3.0/OS-CREDENTIAL/credentials/{access_key}.
func (s *Server) showKeyReply(r *http.Request, access string) reply {
	caller, refusal := s.iamCaller(r, false)
	if refusal != nil {
		return *refusal
	}
	s.mu.Lock()
	k, ok := s.keys[access]
	var info KeyInfo
	var owner userRef
	if ok {
		info, owner = k.info(), k.owner
	}
	s.mu.Unlock()
	if !ok {
		return keyNotFound()
	}
	if owner != caller {
		return forbidden()
	}
	created := info.Created.Format(createTimeFormat)
	return jsonReply(http.StatusOK, map[string]any{"credential": map[string]string{
		"user_id": owner.id(), "access": info.Access, "status": info.Status, "create_time": created,
		"last_use_time": created, "description": info.Description,
	}})
}

// listKeysReply is GET /v3.0/OS-CREDENTIAL/credentials[?user_id=...].
func (s *Server) listKeysReply(r *http.Request) reply {
	caller, refusal := s.iamCaller(r, false)
	if refusal != nil {
		return *refusal
	}
	if id := r.URL.Query().Get("user_id"); id != "" && id != caller.id() {
		return forbidden()
	}
	s.mu.Lock()
	keys := s.keysOf(caller)
	list := make([]map[string]string, len(keys))
	for i, k := range keys {
		list[i] = map[string]string{"user_id": caller.id(), "access": k.access, "status": k.status,
			"create_time": k.created.Format(createTimeFormat), "description": k.description}
	}
	s.mu.Unlock()
	return jsonReply(http.StatusOK, map[string]any{"credentials": list})
}

// createKeyReply is POST /v3.0/OS-CREDENTIAL/credentials. The key exists as
// soon as this returns, whatever then happens to the answer.
func (s *Server) createKeyReply(r *http.Request) reply {
	caller, refusal := s.iamCaller(r, false)
	if refusal != nil {
		return *refusal
	}
	var req struct {
		Credential *struct {
			UserID      string `json:"user_id"`
			Description string `json:"description"`
		} `json:"credential"`
	}
	if err := json.Unmarshal(bodyOf(r), &req); err != nil || req.Credential == nil || req.Credential.UserID == "" {
		return iamError(http.StatusBadRequest, "", "Invalid parameter: credential.user_id is required. (IAM.0007)")
	}
	if req.Credential.UserID != caller.id() {
		return forbidden()
	}

	s.mu.Lock()
	if len(s.keysOf(caller)) >= s.opts.MaxKeysPerUser {
		s.mu.Unlock()
		return iamError(http.StatusBadRequest, "", "akSkNumExceed")
	}
	access := randomString(20, upperDigits)
	for s.keys[access] != nil || s.tempKeys[access].secret != "" {
		access = randomString(20, upperDigits)
	}
	created := s.now().UTC().Truncate(time.Microsecond)
	s.keySeq++
	k := &accessKey{access: access, secret: randomString(40, lettersDigits), owner: caller, status: "active",
		description: req.Credential.Description, created: created, validFrom: created.Add(s.opts.KeyActivationDelay), seq: s.keySeq}
	s.keys[access] = k
	s.mu.Unlock()

	return jsonReply(http.StatusCreated, map[string]any{"credential": map[string]string{
		"access": k.access, "secret": k.secret, "status": k.status, "user_id": caller.id(),
		"create_time": created.Format(createTimeFormat), "description": k.description,
	}})
}

// deleteKeyReply is DELETE /v3.0/OS-CREDENTIAL/credentials/{access_key}.
func (s *Server) deleteKeyReply(r *http.Request, access string) reply {
	caller, refusal := s.iamCaller(r, false)
	if refusal != nil {
		return *refusal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[access]
	if !ok {
		return keyNotFound()
	}
	if k.owner != caller {
		return forbidden()
	}
	delete(s.keys, access)
	return noContent()
}

func noContent() reply { return reply{status: http.StatusNoContent, header: http.Header{}} }

// passwordRequest is the body of POST /v3/users/{user_id}/password.
type passwordRequest struct {
	User struct {
		OriginalPassword string `json:"original_password"`
		Password         string `json:"password"`
	} `json:"user"`
}

// changePasswordReply is POST /v3/users/{user_id}/password: the user changes
// its own password, which revokes every token issued to it.
func (s *Server) changePasswordReply(r *http.Request, userID string) reply {
	caller, refusal := s.iamCaller(r, true)
	if refusal != nil {
		return *refusal
	}
	if userID != caller.id() {
		return forbidden()
	}
	var req passwordRequest
	if err := json.Unmarshal(bodyOf(r), &req); err != nil || req.User.OriginalPassword == "" || req.User.Password == "" {
		return iamError(http.StatusBadRequest, "", "Invalid parameter: user.original_password and user.password are required. (IAM.0007)")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.userIndex(caller)
	if i < 0 {
		return iamError(http.StatusNotFound, "", "Could not find the user.")
	}
	current := s.users[i].Password
	if current == "" || req.User.OriginalPassword != current {
		return iamError(http.StatusBadRequest, "", "The original password is incorrect. (1103)")
	}
	if req.User.Password == current {
		return iamError(http.StatusBadRequest, "", "The new password must differ from the old one. (1108)")
	}
	if problem := weakPassword(caller.name, req.User.Password); problem != "" {
		return iamError(http.StatusBadRequest, "", "The password is too weak: "+problem+". (1118)")
	}
	s.users[i].Password = req.User.Password
	for tok, owner := range s.tokenOwner {
		if owner == caller {
			delete(s.tokenOwner, tok)
			delete(s.issued, tok)
		}
	}
	return noContent()
}

// userIndex finds a user in s.users, or -1. The caller holds s.mu.
func (s *Server) userIndex(u userRef) int {
	for i := range s.users {
		if s.users[i].Domain == u.domain && s.users[i].Name == u.name {
			return i
		}
	}
	return -1
}

// weakPassword says why a password breaks IAM's default rules, or "".
func weakPassword(name, password string) string {
	if n := utf8.RuneCountInString(password); n < 6 || n > 32 {
		return "it must have 6 to 32 characters"
	}
	var upper, lower, digit, special bool
	for _, c := range password {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			special = true
		}
	}
	kinds := 0
	for _, has := range []bool{upper, lower, digit, special} {
		if has {
			kinds++
		}
	}
	if kinds < 2 {
		return "it must contain at least two of upper-case letters, lower-case letters, digits and special characters"
	}
	if name != "" {
		pw, n := strings.ToLower(password), strings.ToLower(name)
		if strings.Contains(pw, n) || strings.Contains(pw, reverse(n)) {
			return "it must not contain the user name or the user name reversed"
		}
	}
	return ""
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

const (
	upperDigits   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	lettersDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString draws n characters of alphabet with crypto/rand, without bias.
func randomString(n int, alphabet string) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
