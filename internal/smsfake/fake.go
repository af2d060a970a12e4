// Package smsfake is a stand-in for the Huawei Cloud SMS passphrase API and the
// IAM token API, built from ../shared/reference/sms-api.md. Tests, `make dev`
// and the benchmarks use it because the real cloud cannot be reached from
// here. It checks credentials the way the API gateway does (tokens, AK/SK
// signatures, IAM user tokens), answers with the documented error bodies and an
// X-Request-Id header, counts what it receives, and fails on demand.
//
// It deliberately shares no code with the plugin: a stand-in that verified
// signatures with the client's own signer would agree with the client's bugs.
package smsfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// User is an IAM user that may obtain tokens with the password method.
type User struct {
	Domain   string `json:"domain"`
	Name     string `json:"name"`
	Password string `json:"password"`
	// PasswordExpires is the token's token.user.password_expires_at; zero:
	// the password never expires (an empty string, as IAM sends it).
	PasswordExpires time.Time `json:"password_expires,omitempty"`
}

// Options configures a Server. Zero values are usable: nothing is accepted.
type Options struct {
	Tokens []string // static tokens accepted as X-Auth-Token
	// AccessKeys are the keys accepted in signatures at the start (AK -> SK).
	// Those not in SecurityTokens are permanent keys of AccessKeyUser, in the
	// access-key store that the IAM key calls change; the others are
	// temporary keys, outside the store, acting as AccessKeyUser too.
	AccessKeys     map[string]string
	SecurityTokens map[string]string // AK -> security token, for temporary AK/SK
	Users          []User            // IAM users
	// AccessKeyUser names the owner of AccessKeys: "name" (the first Users
	// entry of that name) or "domain/name". Default: the first Users entry,
	// else an implicit user "key-user" in domain "key-domain" that has no
	// password. A name that is not in Users is such an implicit user too.
	AccessKeyUser string
	// KeyActivationDelay is how long after its creation a new access key
	// starts being accepted in signatures; default 0.
	KeyActivationDelay time.Duration
	// MaxKeysPerUser is how many permanent access keys a user may hold;
	// default 2, as IAM's quota.
	MaxKeysPerUser int
	TokenLifetime  time.Duration // lifetime of IAM tokens; default 24h
	// TokenSize is the length of issued IAM tokens; default 4096, about what a
	// real IAM (PKI) token measures. Real tokens run to several KB.
	TokenSize int
	// CertValidity is how long the certificates of certkey answers are
	// valid from when they are made; default 30 days.
	CertValidity time.Duration
	// LockoutAfter locks an IAM user after this many consecutive failed
	// logins, as IAM's login protection does; 0 never locks. A locked user is
	// refused, right password or not, for LockoutDuration (default 15m).
	LockoutAfter    int
	LockoutDuration time.Duration
	Tasks           map[string]string // task id -> passphrase
	// TaskMeta gives tasks a name, an enterprise project and a state; a task
	// without one is named after its id, in enterprise project "0" (the
	// default one), READY.
	TaskMeta map[string]TaskMeta
	// AnyTask answers every well-formed task id not in Tasks with a
	// passphrase derived from the id (for load tests over many ids).
	AnyTask bool
	Latency time.Duration    // added before every SMS answer
	Now     func() time.Time // default time.Now

	// UserPermissions are IAM users' policies, by "domain/name"; a user
	// without one may do everything. Static tokens may always do
	// everything.
	UserPermissions map[string]*Permissions
	// IdentityProviders are the OIDC identity providers IAM trusts for
	// POST /v3.0/OS-AUTH/id-token/tokens.
	IdentityProviders []IdentityProvider
	// Agencies may be assumed with POST /v3.0/OS-CREDENTIAL/securitytokens.
	Agencies []Agency
}

// Server is an http.Handler serving the SMS and IAM stand-ins and the control
// API under /__fake/.
type Server struct {
	opts Options
	now  func() time.Time

	mu    sync.Mutex
	tasks map[string]string
	meta  map[string]TaskMeta
	// certKeys holds each task's channel certificates and keys, made on
	// first request.
	certKeys map[string]*certKeySet
	issued   map[string]time.Time // IAM token -> expiry
	// everIssued lists every token issued, for IssuedTokens.
	everIssued []string
	faults     []*Fault
	latency    time.Duration
	stats      Stats
	tokens     map[string]bool
	// release is closed by Release, letting held answers (BodyHold) finish.
	release chan struct{}
	// failedLogins and lockedUntil are IAM's login protection, per user name.
	failedLogins map[string]int
	lockedUntil  map[string]time.Time

	// users are the IAM users, passwords as they are now.
	users []User
	// tokenOwner is the user each issued IAM token belongs to.
	tokenOwner map[string]userRef
	// keys is the permanent access-key store, tempKeys the temporary keys.
	keys     map[string]*accessKey
	tempKeys map[string]tempKey
	keySeq   int64

	// userPerms are IAM users' policies (Options.UserPermissions).
	userPerms map[string]*Permissions
	// idps are the identity providers by ID; federatedUsers the users
	// they mapped (to the provider's ID), with their policies.
	idps           map[string]*idProvider
	federatedUsers map[userRef]string
	federatedPerms map[userRef]*Permissions
	// agencies by "domain/name".
	agencies map[string]*Agency
	// calls is the trace of SMS calls (Calls).
	calls []Call
}

// Stats counts what the stand-in received.
type Stats struct {
	// Requests counts passphrase requests, whatever their outcome.
	Requests int64 `json:"requests"`
	// ByTask counts passphrase requests per task id.
	ByTask map[string]int64 `json:"by_task"`
	// TaskRequests counts ShowTask requests, ListRequests ListTasks
	// requests (one per page), whatever their outcome.
	TaskRequests int64 `json:"task_requests"`
	ListRequests int64 `json:"list_requests"`
	// CertKeyRequests counts certkey requests, CertKeyByTask per task id.
	CertKeyRequests int64            `json:"certkey_requests"`
	CertKeyByTask   map[string]int64 `json:"certkey_by_task"`
	// ByAuth counts accepted passphrase requests per method: token, aksk, iam.
	ByAuth map[string]int64 `json:"by_auth"`
	// Rejected counts passphrase requests refused for their credentials.
	Rejected int64 `json:"rejected"`
	// IAMTokenRequests counts POST /v3/auth/tokens, IAMTokensIssued the
	// successes, IAMLoginFailures the refusals (wrong credentials or locked).
	IAMTokenRequests int64 `json:"iam_token_requests"`
	IAMTokensIssued  int64 `json:"iam_tokens_issued"`
	IAMLoginFailures int64 `json:"iam_login_failures"`
	// IAMKeyCalls counts the IAM self-service calls per call name:
	// show-key, list-keys, create-key, delete-key, change-password.
	IAMKeyCalls map[string]int64 `json:"iam_key_calls"`
	// IAMAppliedLate counts IAM requests a FaultApplyLate carried out after
	// their answer's deadline.
	IAMAppliedLate int64 `json:"iam_applied_late"`
	// IAMLockouts counts the times a user was locked out (Options.LockoutAfter).
	IAMLockouts int64 `json:"iam_lockouts"`
	// Faults counts requests answered by an injected fault.
	Faults int64 `json:"faults"`
	// SignedHeaders is the SignedHeaders list of the last accepted AK/SK request.
	SignedHeaders string `json:"signed_headers"`
}

// New builds a stand-in.
func New(opts Options) *Server {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	if opts.TokenSize <= 0 {
		opts.TokenSize = 4096
	}
	if opts.CertValidity == 0 {
		opts.CertValidity = 30 * 24 * time.Hour
	}
	if opts.LockoutDuration <= 0 {
		opts.LockoutDuration = 15 * time.Minute
	}
	if opts.MaxKeysPerUser <= 0 {
		opts.MaxKeysPerUser = 2
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{opts: opts, now: now, tasks: map[string]string{}, meta: map[string]TaskMeta{}, certKeys: map[string]*certKeySet{}, issued: map[string]time.Time{},
		latency: opts.Latency, tokens: map[string]bool{}, failedLogins: map[string]int{}, lockedUntil: map[string]time.Time{}, release: make(chan struct{})}
	for id, p := range opts.Tasks {
		s.tasks[id] = p
	}
	for id, m := range opts.TaskMeta {
		s.meta[id] = m
	}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	s.stats = newStats()
	s.initIdentities()
	s.userPerms = map[string]*Permissions{}
	for k, v := range opts.UserPermissions {
		s.userPerms[k] = v
	}
	s.idps, s.federatedUsers, s.federatedPerms = map[string]*idProvider{}, map[userRef]string{}, map[userRef]*Permissions{}
	for _, p := range opts.IdentityProviders {
		if err := s.SetIdentityProvider(p); err != nil {
			panic("smsfake: identity provider " + p.ID + ": " + err.Error())
		}
	}
	s.agencies = map[string]*Agency{}
	for _, a := range opts.Agencies {
		if err := s.SetAgency(a); err != nil {
			panic("smsfake: agency " + a.Name + ": " + err.Error())
		}
	}
	return s
}

func newStats() Stats {
	return Stats{ByTask: map[string]int64{}, ByAuth: map[string]int64{}, CertKeyByTask: map[string]int64{}, IAMKeyCalls: map[string]int64{}}
}

// SetTask creates or changes a task's passphrase.
func (s *Server) SetTask(id, passphrase string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[id] = passphrase
}

// SetTaskMeta changes a task's name, enterprise project and state, as a
// user renaming it or moving it to another enterprise project would.
func (s *Server) SetTaskMeta(id string, m TaskMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta[id] = m
}

// DeleteTask removes a task, so that it answers 404.
func (s *Server) DeleteTask(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
	delete(s.meta, id)
}

// SetLatency changes the delay added before every SMS answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// AddFault queues a fault; faults are matched in the order they were added.
func (s *Server) AddFault(f Fault) error {
	if err := f.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
	return nil
}

// Release lets every answer held by a BodyHold fault finish; later held
// answers wait for the next Release.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.release)
	s.release = make(chan struct{})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// RevokeTokens invalidates every IAM token issued so far, as IAM does when a
// user's password or permissions change.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued = map[string]time.Time{}
	s.tokenOwner = map[string]userRef{}
}

// IssuedTokens returns every IAM token issued so far (revoked ones included),
// so that tests can look for them, or for pieces of them, where they must
// not be.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.everIssued))
	return append(out, s.everIssued...)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.ByTask = make(map[string]int64, len(s.stats.ByTask))
	for k, v := range s.stats.ByTask {
		out.ByTask[k] = v
	}
	out.ByAuth = maps.Clone(s.stats.ByAuth)
	out.CertKeyByTask = maps.Clone(s.stats.CertKeyByTask)
	out.IAMKeyCalls = maps.Clone(s.stats.IAMKeyCalls)
	return out
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
}

// ServeHTTP routes SMS, IAM and control requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", newRequestID())
	r = withBufferedBody(r)
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/__fake/"):
		s.serveControl(w, r)
	case path == "/v3/auth/tokens":
		s.serveIAMCall(w, r, callToken, s.tokenReply)
	case path == idTokenPath:
		s.serveIAMCall(w, r, callIDToken, s.idTokenReply)
	case path == securityTokensPath:
		s.serveIAMCall(w, r, callSecurityToken, s.securityTokenReply)
	case path == credentialsPath || strings.HasPrefix(path, credentialsPath+"/"):
		s.routeCredentials(w, r, strings.TrimPrefix(strings.TrimPrefix(path, credentialsPath), "/"))
	case strings.HasPrefix(path, "/v3/users/") && strings.HasSuffix(path, "/password"):
		s.routePassword(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/v3/users/"), "/password"))
	case path == "/v3/tasks":
		s.serveSMS(w, r, callTasks, "", s.listReply)
	case strings.HasPrefix(path, "/v3/tasks/"):
		id, sub, _ := strings.Cut(strings.TrimPrefix(path, "/v3/tasks/"), "/")
		switch sub {
		case "":
			s.serveSMS(w, r, callTask, id, s.taskReply)
		case "passphrase":
			s.serveSMS(w, r, callPassphrase, id, s.passphraseReply)
		case "certkey":
			s.serveSMS(w, r, callCertKey, id, s.certKeyReply)
		default:
			writeReply(w, smsError(http.StatusNotFound, "APIGW.0101", "The API does not exist or has not been published in the environment."))
		}
	default:
		writeReply(w, smsError(http.StatusNotFound, "APIGW.0101", "The API does not exist or has not been published in the environment."))
	}
}

// The SMS calls the stand-in serves, as fault targets.
const (
	callPassphrase = "passphrase"
	callTask       = "task"
	callTasks      = "tasks"
	callCertKey    = "certkey"
)

// serveSMS answers an SMS call: counts it, applies the latency and any
// fault, and otherwise the call's normal answer.
func (s *Server) serveSMS(w http.ResponseWriter, r *http.Request, call, taskID string, normal func(*http.Request, string) reply) {
	s.mu.Lock()
	switch call {
	case callPassphrase:
		s.stats.Requests++
		s.stats.ByTask[taskID]++
	case callTask:
		s.stats.TaskRequests++
	case callTasks:
		s.stats.ListRequests++
	case callCertKey:
		s.stats.CertKeyRequests++
		s.stats.CertKeyByTask[taskID]++
	}
	fault := s.takeFault("sms", call, taskID)
	latency := s.latency
	s.mu.Unlock()
	if fault != nil {
		s.countFault()
	}

	if !sleep(r, latency) || !fault.before(w, r) {
		return
	}
	var rep reply
	note := &callNote{}
	if !fault.replaces() {
		rep = normal(r.WithContext(context.WithValue(r.Context(), callNoteKey{}, note)), taskID)
	}
	rep = fault.apply(r, call, rep, taskID, smsError, s.now())
	s.record(call, taskID, note.who, rep.status)
	fault.deliver(w, r, rep)
}

// authorized checks the request's credentials and counts the outcome, then
// the caller's policy for the call on the task (taskID empty for ListTasks);
// it returns the caller, and the gateway's refusal or nil.
func (s *Server) authorized(r *http.Request, call, taskID string) (principal, *reply) {
	if r.Method != http.MethodGet {
		rep := smsError(http.StatusMethodNotAllowed, "APIGW.0102", "The method is not allowed.")
		return principal{}, &rep
	}
	method, who, code, msg := s.authenticate(r)
	if note := noteOf(r); note != nil {
		note.who = who
	}
	s.mu.Lock()
	if method == "" {
		s.stats.Rejected++
		s.mu.Unlock()
		rep := smsError(http.StatusUnauthorized, code, msg)
		return principal{}, &rep
	}
	s.stats.ByAuth[method]++
	s.mu.Unlock()
	return who, s.permitted(who, call, taskID)
}

// passphraseReply is the normal answer of GET /v3/tasks/{id}/passphrase.
func (s *Server) passphraseReply(r *http.Request, taskID string) reply {
	if _, refusal := s.authorized(r, callPassphrase, taskID); refusal != nil {
		return *refusal
	}
	s.mu.Lock()
	passphrase, ok := s.tasks[taskID]
	if !ok && s.opts.AnyTask && validTaskID(taskID) {
		passphrase, ok = "passphrase-of-"+taskID, true
	}
	s.mu.Unlock()

	if !ok {
		return smsError(http.StatusNotFound, "SMS.1801", "The task does not exist.")
	}
	return jsonReply(http.StatusOK, map[string]string{"task_id": taskID, "passphrase": passphrase})
}

func (s *Server) countFault() {
	s.mu.Lock()
	s.stats.Faults++
	s.mu.Unlock()
}

// authenticate returns the accepted method and the caller, or "" with the
// gateway's error.
func (s *Server) authenticate(r *http.Request) (method string, who principal, code, msg string) {
	who, msg = s.whoIs(r)
	switch {
	case who.kind == "":
		return "", who, "APIGW.0301", msg
	case who.kind == "token":
		return "token", who, "", ""
	case r.Header.Get("X-Auth-Token") != "":
		return "iam", who, "", ""
	}
	_, signed, _, _ := parseAuthorization(r.Header.Get("Authorization"))
	s.mu.Lock()
	s.stats.SignedHeaders = signed
	s.mu.Unlock()
	return "aksk", who, "", ""
}

func validTaskID(id string) bool {
	if id == "" || len(id) > 36 || id == "." || id == ".." {
		return false
	}
	for _, c := range id {
		if !isTaskIDChar(c) {
			return false
		}
	}
	return true
}

func isTaskIDChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) { writeReply(w, jsonReply(status, v)) }

func writeReply(w http.ResponseWriter, rep reply) { (*Fault)(nil).deliver(w, nil, rep) }

// smsError is the error shape of SMS and its API gateway; 403 uses SMS's
// documented body, encoded_authorization_message included.
func smsError(status int, code, msg string) reply {
	body := map[string]any{
		"error_code": code,
		"error_msg":  msg,
	}
	if status == http.StatusForbidden {
		body["encoded_authorization_message"] = "ENCODED-AUTHZ-" + strings.Repeat("X", 64)
		body["error_param"] = []string{"You do not have permission to perform action sms:server:getTaskPassphrase on resource."}
		body["details"] = []map[string]string{{"error_code": code, "error_msg": msg}}
	}
	return jsonReply(status, body)
}

// iamError is IAM v3's (Keystone's) error shape: the HTTP status as the code,
// the explanation as the message.
func iamError(status int, _, msg string) reply {
	return jsonReply(status, map[string]any{"error": map[string]any{
		"code": status, "message": msg, "title": http.StatusText(status),
	}})
}

// bodyKey holds a request's body, read once so that the signature check, the
// handlers and the echo fault can all see it.
type bodyKey struct{}

func withBufferedBody(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, raw))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return r
}

func bodyOf(r *http.Request) []byte {
	if raw, ok := r.Context().Value(bodyKey{}).([]byte); ok {
		return raw
	}
	if r.Body == nil {
		return nil
	}
	// A request built by a test rather than received by ServeHTTP.
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return raw
}

// standardError is what SMS or its gateway answers with a given status.
func standardError(status int) (code, msg string) {
	switch status {
	case http.StatusBadRequest:
		return "SMS.0201", "Invalid request."
	case http.StatusUnauthorized:
		return "APIGW.0301", "Incorrect IAM authentication information: the token expired."
	case http.StatusForbidden:
		return "SMS.9004", "The current account does not have the permission to execute policy. You do not have permission to perform action sms:server:getTaskPassphrase on resource."
	case http.StatusNotFound:
		return "SMS.1801", "The task does not exist."
	case http.StatusTooManyRequests:
		return "APIGW.0308", "The throttling threshold has been reached."
	case http.StatusNotImplemented:
		return "APIGW.0102", "The API is not implemented."
	case http.StatusBadGateway:
		return "APIGW.0202", "The backend service is unavailable."
	case http.StatusServiceUnavailable:
		return "APIGW.0201", "The service is unavailable."
	case http.StatusGatewayTimeout:
		return "APIGW.0203", "The backend service timed out."
	default:
		return "SMS.0001", fmt.Sprintf("System error (%d).", status)
	}
}
