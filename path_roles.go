package sms

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/time/rate"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

const (
	roleStoragePrefix  = "role/"
	rolesPrefix        = "roles/"
	maxRoleNameLength  = 64
	maxRolePatterns    = 100
	maxPatternLength   = 255
	maxDescriptionSize = 1024
)

// role scopes a team to the SMS tasks of some enterprise projects, or whose
// names match some globs, or both.
type role struct {
	EnterpriseProjectIDs []string `json:"enterprise_project_ids"`
	TaskNameGlobs        []string `json:"task_name_globs"`
	Description          string   `json:"description"`
	// MaxUpstreamRPS is the role's own upstream budget; 0: only the mount's.
	MaxUpstreamRPS float64 `json:"max_upstream_rps"`
	// A Huawei agency whose temporary credentials make every upstream call
	// of the role's reads, so that IAM enforces the role too.
	AgencyName       string        `json:"agency_name,omitempty"`
	AgencyDomainID   string        `json:"agency_domain_id,omitempty"`
	AgencyDomainName string        `json:"agency_domain_name,omitempty"`
	AgencyDuration   time.Duration `json:"agency_duration,omitempty"`

	// Compiled by compile; every role in memory is.
	compiled bool
	name     string              // set by whoever loads or writes the role, before compile
	agency   *agencyRef          // nil without an agency
	epSet    map[string]struct{} // EnterpriseProjectIDs, when there are many
	names    nameMatcher
	// limiter is made with the role and lives as long as it does: every
	// read through this definition draws on it, and a changed role (a new
	// value) starts a new one.
	limiter *rate.Limiter
}

// manyValues is where sets beat scanning a slice.
const manyValues = 4

// compile prepares a role for matching.
func (r *role) compile() *role {
	r.epSet = nil
	if len(r.EnterpriseProjectIDs) > manyValues {
		r.epSet = make(map[string]struct{}, len(r.EnterpriseProjectIDs))
		for _, ep := range r.EnterpriseProjectIDs {
			r.epSet[ep] = struct{}{}
		}
	}
	r.names = compileNames(r.TaskNameGlobs)
	r.limiter = newRoleLimiter(r.MaxUpstreamRPS)
	r.agency = newAgencyRef(r)
	r.compiled = true
	return r
}

// nameMatcher matches a name against a role's globs: past a few globs, the
// common shapes (an exact name, "prefix*") are looked up in sets, by each
// distinct prefix length, and only the others are tried one by one.
type nameMatcher struct {
	exact      map[string]struct{}
	prefixes   map[string]struct{}
	prefixLens []int
	general    []glob
}

func compileNames(patterns []string) nameMatcher {
	var m nameMatcher
	if len(patterns) <= manyValues {
		for _, p := range patterns {
			m.general = append(m.general, compileGlob(p))
		}
		return m
	}
	m.exact, m.prefixes = map[string]struct{}{}, map[string]struct{}{}
	for _, p := range patterns {
		switch stars := strings.Count(p, "*"); {
		case stars == 0:
			m.exact[p] = struct{}{}
		case stars == 1 && strings.HasSuffix(p, "*"):
			prefix := strings.TrimSuffix(p, "*")
			m.prefixes[prefix] = struct{}{}
			if !slices.Contains(m.prefixLens, len(prefix)) {
				m.prefixLens = append(m.prefixLens, len(prefix))
			}
		default:
			m.general = append(m.general, compileGlob(p))
		}
	}
	slices.Sort(m.prefixLens)
	return m
}

func (m *nameMatcher) match(name string) bool {
	if m.exact != nil {
		if _, ok := m.exact[name]; ok {
			return true
		}
	}
	for _, n := range m.prefixLens {
		if n > len(name) {
			break
		}
		if _, ok := m.prefixes[name[:n]]; ok {
			return true
		}
	}
	for i := range m.general {
		if m.general[i].match(name) {
			return true
		}
	}
	return false
}

// allows reports whether a task is in the role's scope: its enterprise
// project is one of the role's (when it names some), and its name matches
// one of the role's globs (when it has some). A task whose metadata has no
// enterprise project matches no role that names enterprise projects.
func (r *role) allows(t *huawei.Task) bool {
	if len(r.EnterpriseProjectIDs) == 0 && len(r.TaskNameGlobs) == 0 {
		// An agency alone bounds its role: SMS refuses, with the agency's
		// credentials, what the agency's policy does not allow. A role with
		// no bound at all (never written so) allows nothing.
		return r.agency != nil && r.compiled
	}
	if !r.compiled {
		return false // fail closed: a role that skipped compile matches nothing
	}
	if len(r.EnterpriseProjectIDs) > 0 && !r.hasProject(t.EnterpriseProjectID) {
		return false
	}
	return len(r.TaskNameGlobs) == 0 || r.names.match(t.Name)
}

func (r *role) hasProject(ep string) bool {
	if r.epSet != nil {
		_, ok := r.epSet[ep]
		return ok
	}
	for _, id := range r.EnterpriseProjectIDs {
		if id == ep {
			return true
		}
	}
	return false
}

// glob is a pattern split at its stars: a name matches when it starts with
// the first part, ends with the last, and holds the middle ones in order
// between them. Matching is a few comparisons, never a backtracking search;
// the common shapes (an exact name, "prefix*") take one comparison.
type glob struct {
	parts  []string // len(parts) == number of stars + 1
	prefix string   // for "prefix*"
	shape  uint8
}

const (
	globGeneral uint8 = iota
	globExact
	globPrefix
)

func compileGlob(pattern string) glob {
	g := glob{parts: strings.Split(pattern, "*")}
	switch {
	case len(g.parts) == 1:
		g.shape = globExact
	case len(g.parts) == 2 && g.parts[1] == "":
		g.shape, g.prefix = globPrefix, g.parts[0]
	}
	return g
}

func (g *glob) match(name string) bool {
	switch g.shape {
	case globExact:
		return name == g.parts[0]
	case globPrefix:
		return len(name) >= len(g.prefix) && name[:len(g.prefix)] == g.prefix
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	middle := name[len(first) : len(name)-len(last)]
	for _, part := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(middle, part)
		if i < 0 {
			return false
		}
		middle = middle[i+len(part):]
	}
	return true
}

// globMatch reports whether name matches pattern, where "*" matches any run
// of characters (none included) and every other character only itself.
func globMatch(pattern, name string) bool {
	g := compileGlob(pattern)
	return g.match(name)
}

func validateRoleName(name string) error {
	if name == "" || len(name) > maxRoleNameLength {
		return fmt.Errorf("role must be 1 to %d characters", maxRoleNameLength)
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return fmt.Errorf("role may contain only letters, digits, '-' and '_'")
		}
	}
	return nil
}

func roleNameOK(name string) bool { return validateRoleName(name) == nil }

// isNameChar reports whether c may appear in a role name: a letter, a digit,
// '-' or '_'.
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// roles holds the role definitions this node has read, in step with storage
// through this node's writes and Invalidate for other nodes' writes. Reads
// look them up in an immutable snapshot without a lock (the hot path of a
// role read); loads and writes take mu and publish a new snapshot, so that a
// load racing a write cannot put an older definition back.
type roles struct {
	mu    sync.Mutex
	known atomic.Pointer[roleSnapshot]
	// writeMu serialises role writes from their read to their store, so
	// that two partial updates cannot undo each other (a narrowing lost to
	// a concurrent description change).
	writeMu sync.Mutex
	// spaceFor gives an agency identity its cache space; changed is told
	// of every role replaced or dropped, to drop its agency credentials.
	// Both run under mu.
	spaceFor func(identity string) *space
	changed  func(old *role)
	// releaseSpace is told of an agency identity no role names any more,
	// with the space its last role had. It runs under mu.
	releaseSpace func(identity string, sp *space)
}

// roleSnapshot maps names to the roles that exist. A
// handful of names are found faster by comparing than by hashing, and a
// deployment has a role per team: up to smallRoleSet names, a scan.
type roleSnapshot struct {
	names []string
	roles []*role
	index map[string]int // only past smallRoleSet names
}

const smallRoleSet = 8

func (s *roleSnapshot) find(name string) int {
	if s.index != nil {
		if i, ok := s.index[name]; ok {
			return i
		}
		return -1
	}
	for i, n := range s.names {
		if len(n) == len(name) && n == name {
			return i
		}
	}
	return -1
}

// cached returns what this node knows of a role, without a lock.
func (rs *roles) cached(name string) (r *role, known bool) {
	if s := rs.known.Load(); s != nil {
		if i := s.find(name); i >= 0 {
			return s.roles[i], true
		}
	}
	return nil, false
}

// set publishes a new snapshot with name changed (r) or dropped (!keep).
// The caller holds mu.
func (rs *roles) set(name string, r *role, keep bool) {
	next := &roleSnapshot{}
	var gone *agencyRef // the agency of the role replaced or dropped
	if s := rs.known.Load(); s != nil {
		for i, n := range s.names {
			if n != name {
				next.names = append(next.names, n)
				next.roles = append(next.roles, s.roles[i])
			} else if old := s.roles[i]; old != r && old.agency != nil {
				gone = old.agency
				if rs.changed != nil {
					rs.changed(old)
				}
			}
		}
	}
	if keep && r != nil && r.agency != nil && rs.spaceFor != nil {
		r.agency.space = rs.spaceFor(r.agency.identity)
	}
	if keep {
		next.names = append(next.names, name)
		next.roles = append(next.roles, r)
	}
	if len(next.names) > smallRoleSet {
		next.index = make(map[string]int, len(next.names))
		for i, n := range next.names {
			next.index[n] = i
		}
	}
	rs.known.Store(next)
	if gone != nil && rs.releaseSpace != nil && !next.namesAgency(gone.identity) {
		// No role this node knows names the agency any more: its cache
		// space goes, or every agency ever named would keep memory. A role
		// loaded later gets a new one.
		rs.releaseSpace(gone.identity, gone.space)
	}
}

// namesAgency reports whether a role of the snapshot acts through the
// agency identity.
func (s *roleSnapshot) namesAgency(identity string) bool {
	for _, r := range s.roles {
		if r != nil && r.agency != nil && r.agency.identity == identity {
			return true
		}
	}
	return false
}

// get returns a role, or nil if it does not exist. Only roles that exist
// are remembered: a name that names no role costs a storage read each time,
// and never memory (any token can send such names: Vault runs the existence
// check before its ACL).
func (rs *roles) get(ctx context.Context, s logical.Storage, name string) (*role, error) {
	if r, ok := rs.cached(name); ok {
		return r, nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.cached(name); ok {
		return r, nil
	}
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	rs.set(name, r, true)
	return r, nil
}

// loadRole reads a role from storage, or nil if there is none.
func loadRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading role %q from storage: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	r := &role{}
	if err := entry.DecodeJSON(r); err != nil {
		return nil, fmt.Errorf("decoding role %q: %w", name, err)
	}
	r.name = name
	return r.compile(), nil
}

func (rs *roles) put(ctx context.Context, s logical.Storage, name string, r *role) error {
	entry, err := logical.StorageEntryJSON(roleStoragePrefix+name, r)
	if err != nil {
		return err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := s.Put(ctx, entry); err != nil {
		rs.set(name, nil, false)
		return fmt.Errorf("saving role %q: %w", name, err)
	}
	rs.set(name, r, true)
	return nil
}

func (rs *roles) delete(ctx context.Context, s logical.Storage, name string) error {
	rs.writeMu.Lock()
	defer rs.writeMu.Unlock()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.set(name, nil, false)
	if err := s.Delete(ctx, roleStoragePrefix+name); err != nil {
		return fmt.Errorf("deleting role %q: %w", name, err)
	}
	return nil
}

// forget drops what this node knows of a role, after another node changed it.
func (rs *roles) forget(name string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.set(name, nil, false)
}

func pathRoles(b *backend) []*framework.Path {
	roleField := &framework.FieldSchema{Type: framework.TypeString, Required: true,
		Description: "Name of the role: 1 to 64 letters, digits, '-' or '_'."}
	fields := map[string]*framework.FieldSchema{
		"role": roleField,
		"enterprise_project_ids": {Type: framework.TypeCommaStringSlice,
			Description: `Enterprise project IDs whose tasks the role may read ("0" is the default enterprise project). A list, or a comma-separated string.`},
		"task_name_globs": {Type: framework.TypeCommaStringSlice,
			Description: `Globs on task names ("*" matches any run of characters); a task must match one. A list, or a comma-separated string.`},
		"description": {Type: framework.TypeString, Description: "What the role is for."},
		"max_upstream_rps": {Type: framework.TypeFloat,
			Description: "Most upstream fetches per second that reads through this role may start, on each node (0: only the mount's max_upstream_rps applies). Decimals allowed."},
		"agency_name": {Type: framework.TypeString,
			Description: "A Huawei IAM agency: every SMS call of the role's reads is made with its temporary credentials (assume_role), obtained with the mount's credential, so that IAM enforces the agency's policy and Cloud Trace shows the role. Set with agency_domain_id or agency_domain_name; empty removes it."},
		"agency_domain_id": {Type: framework.TypeString,
			Description: "ID of the account (domain) that owns agency_name, the delegating account; may be another account. Set this or agency_domain_name."},
		"agency_domain_name": {Type: framework.TypeString,
			Description: "Name of the account (domain) that owns agency_name. Set this or agency_domain_id."},
		"agency_duration": {Type: framework.TypeDurationSecond, Default: int(defaultAgencyDuration.Seconds()),
			Description: "How long the agency's temporary credentials live (duration_seconds): 15m to 24h. The engine obtains new ones ahead of expiry."},
	}
	readFields := map[string]*framework.FieldSchema{}
	for k, v := range fields {
		if k != "role" {
			readFields[k] = v
		}
	}
	readFields["agency_session_name"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The session_user name the role's agency credentials are obtained under: what Huawei Cloud Trace shows next to the agency."}
	return []*framework.Path{
		{
			Pattern:      "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "roles"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathRolesList,
					Summary:  "List the roles.",
				},
				// Writes to "roles/" itself name no role: a 400, not a 405.
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleNameMissing, Summary: "(a role name is required)"},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleNameMissing, Summary: "(a role name is required)"},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleNameMissing, Summary: "(a role name is required)"},
			},
			HelpSynopsis: "List the roles that scope teams to SMS tasks.",
		},
		{
			// Any name reaches validation, so that a bad one gets a 400
			// naming the field rather than a bare 404 from the router.
			Pattern:        "roles/(?P<role>[^/]+)$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "role"},
			Fields:         fields,
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathRoleRead,
					Summary:  "Read a role.",
					Responses: map[int][]framework.Response{
						http.StatusOK: {{Description: "OK", Fields: readFields}},
					},
				},
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Create a role."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Change the fields named in the request; the others keep their values."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete, Summary: "Delete a role."},
			},
			HelpSynopsis: "A role: the SMS tasks a team may read, by enterprise project and task name.",
			HelpDescription: `
A role sets enterprise_project_ids, task_name_globs, or both (a task must then
satisfy both). roles/<role>/passphrase/<task_id> serves a task's passphrase
only when SMS says the task is in the role's scope; roles/<role>/tasks lists
the tasks in scope. Grant teams those paths, one policy per role.`,
		},
	}
}

func (b *backend) pathRoleNameMissing(_ context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	return logical.ErrorResponse("role is required: use roles/<role>"), nil
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name := d.Get("role").(string)
	if !roleNameOK(name) {
		return false, nil // the request itself reports the bad name
	}
	if _, known := b.roles.cached(name); known {
		return true, nil
	}
	// Not through roles.get: this runs before Vault's ACL, for any token.
	r, err := loadRole(ctx, req.Storage, name)
	return r != nil, err
}

func (b *backend) pathRolesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r, err := b.roles.get(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("role %q does not exist", name))
	}
	data := map[string]any{
		"enterprise_project_ids": nonNil(r.EnterpriseProjectIDs),
		"task_name_globs":        nonNil(r.TaskNameGlobs),
		"description":            r.Description,
		"max_upstream_rps":       r.MaxUpstreamRPS,
		"agency_name":            r.AgencyName,
		"agency_domain_id":       r.AgencyDomainID,
		"agency_domain_name":     r.AgencyDomainName,
		"agency_duration":        int64(0),
		"agency_session_name":    "",
	}
	if r.agency != nil {
		data["agency_duration"] = int64(r.agency.agency.Duration.Seconds())
		data["agency_session_name"] = r.agency.agency.SessionUser
	}
	return &logical.Response{Data: data}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	b.roles.writeMu.Lock()
	defer b.roles.writeMu.Unlock()
	stored, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r := &role{}
	if stored != nil {
		cp := *stored
		r = &cp
	}

	var problems []string
	lists := []struct {
		field string
		dst   *[]string
		check func(string) string
	}{
		{"enterprise_project_ids", &r.EnterpriseProjectIDs, checkEnterpriseProjectID},
		{"task_name_globs", &r.TaskNameGlobs, checkGlob},
	}
	for _, l := range lists {
		raw, ok := req.Data[l.field]
		if !ok {
			continue
		}
		values, problem := stringList(l.field, raw)
		if problem == "" {
			values, problem = cleanList(l.field, values, l.check)
		}
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		*l.dst = values
	}
	if v, ok := d.GetOk("description"); ok {
		desc := v.(string)
		if len(desc) > maxDescriptionSize || !utf8.ValidString(desc) {
			problems = append(problems, fmt.Sprintf("description must be valid UTF-8 of at most %d bytes", maxDescriptionSize))
		}
		r.Description = desc
	}
	if v, ok := d.GetOk("max_upstream_rps"); ok {
		rps := v.(float64)
		if math.IsNaN(rps) || rps < 0 || rps > maxUpstreamRPS {
			problems = append(problems, fmt.Sprintf("max_upstream_rps must be between 0 (only the mount's limit) and %d", maxUpstreamRPS))
		}
		r.MaxUpstreamRPS = rps
	}
	problems = append(problems, applyAgencyFields(r, d)...)
	if len(problems) == 0 && len(r.EnterpriseProjectIDs) == 0 && len(r.TaskNameGlobs) == 0 && r.AgencyName == "" {
		problems = append(problems, "a role must set enterprise_project_ids, task_name_globs or agency_name (or several): a role without any would allow every task")
	}
	if len(problems) > 0 {
		return logical.ErrorResponse("invalid role: " + strings.Join(problems, "; ")), nil
	}
	r.name = name
	if err := b.roles.put(ctx, req.Storage, name, r.compile()); err != nil {
		return nil, err
	}
	b.logger.Info("role written", "role", name)
	return nil, nil
}

// stringList reads a list field: a list of strings, or one string of
// comma-separated values (what the vault CLI sends for key=a,b). Anything
// else is refused, naming the field without repeating the value.
func stringList(field string, raw any) ([]string, string) {
	switch v := raw.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, ""
		}
		return strings.Split(v, ","), ""
	case []string:
		return v, ""
	case []any:
		out := make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, field + " must be a list of strings"
			}
			out = append(out, s)
		}
		return out, ""
	}
	return nil, field + " must be a list of strings"
}

// cleanList trims, checks and de-duplicates the values of a list field.
func cleanList(field string, values []string, check func(string) string) ([]string, string) {
	if len(values) > maxRolePatterns {
		return nil, fmt.Sprintf("%s may hold at most %d values", field, maxRolePatterns)
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		v = strings.TrimSpace(v)
		if problem := check(v); problem != "" {
			return nil, field + " " + problem
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, ""
}

func checkEnterpriseProjectID(v string) string {
	if v == "" || len(v) > maxRoleNameLength || !idPattern.MatchString(v) {
		return "values must be 1 to 64 letters, digits, '-' or '_' (for example 0, the default enterprise project)"
	}
	return ""
}

func checkGlob(v string) string {
	if v == "" {
		return "values must not be empty (use * to match every name)"
	}
	if len(v) > maxPatternLength || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Sprintf("values must be valid UTF-8 of at most %d bytes, without control characters", maxPatternLength)
	}
	return ""
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := b.roles.delete(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.logger.Info("role deleted", "role", name)
	return nil, nil
}
