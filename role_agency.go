package sms

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// Bounds of agency_duration: IAM's duration_seconds is 900 to 86400.
const (
	minAgencyDuration     = 15 * time.Minute
	maxAgencyDuration     = 24 * time.Hour
	defaultAgencyDuration = time.Hour
	maxSessionName        = 64
	sessionNamePrefix     = "vault-"
)

// sessionNamePattern is IAM's rule for session_user.name.
var sessionNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{4,63}$`)

// agencyRef is a role's agency as compiled: the identity its reads use
// upstream. Immutable but for space, set once when the role is published.
type agencyRef struct {
	agency huawei.Agency
	// identity names whose answers a read may be served: the agency, in
	// its account. Roles naming the same agency share answers, since IAM
	// decides by the agency's policy.
	identity string
	// key names the temporary credentials: the identity, the duration and
	// the session name. Roles that agree on all three share them.
	key   string
	space *space
	// dropped is set once the role is replaced or deleted: reads still in
	// flight through it keep no credentials behind.
	dropped atomic.Bool
}

// sp is the cache space of reads through a (nil: the mount's own).
func (a *agencyRef) sp() *space {
	if a == nil {
		return nil
	}
	return a.space
}

func newAgencyRef(r *role) *agencyRef {
	if r.AgencyName == "" {
		return nil
	}
	duration := r.AgencyDuration
	if duration == 0 {
		duration = defaultAgencyDuration
	}
	a := huawei.Agency{Name: r.AgencyName, DomainID: r.AgencyDomainID, DomainName: r.AgencyDomainName,
		Duration: duration, SessionUser: sessionUserName(r.name)}
	account := "id:" + a.DomainID
	if a.DomainID == "" {
		account = "name:" + a.DomainName
	}
	identity := account + "\x00" + a.Name
	return &agencyRef{agency: a, identity: identity,
		key: fmt.Sprintf("%s\x00%d\x00%s", identity, int64(duration.Seconds()), a.SessionUser)}
}

// sessionUserName derives IAM's session_user.name (5 to 64 characters, a
// letter first, then letters, digits, '-' and '_') from a role name: the
// name itself when it qualifies, else "vault-" and the name, shortened with
// a hash when that is too long, so that two roles never share one. A name
// that qualifies but starts with "vault-" is prefixed too: kept as it is,
// role "vault-abc" would act under the name derived for role "abc".
func sessionUserName(role string) string {
	if sessionNamePattern.MatchString(role) && !strings.HasPrefix(strings.ToLower(role), sessionNamePrefix) {
		return role
	}
	n := sessionNamePrefix + role
	if len(n) > maxSessionName {
		sum := sha256.Sum256([]byte(role))
		n = n[:maxSessionName-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return n
}

// applyAgencyFields applies and checks the agency fields a role write
// names, returning the problems, each naming its field.
func applyAgencyFields(r *role, d *framework.FieldData) []string {
	var problems []string
	written, durationWritten := false, false
	for _, f := range []struct {
		name string
		dst  *string
	}{{"agency_name", &r.AgencyName}, {"agency_domain_id", &r.AgencyDomainID}, {"agency_domain_name", &r.AgencyDomainName}} {
		if v, ok := d.GetOk(f.name); ok {
			*f.dst = strings.TrimSpace(v.(string))
			written = true
		}
	}
	if v, ok := d.GetOk("agency_duration"); ok {
		secs := v.(int)
		r.AgencyDuration = time.Duration(min(secs, maxDurationSeconds)) * time.Second
		written, durationWritten = true, true
		if r.AgencyDuration < minAgencyDuration || r.AgencyDuration > maxAgencyDuration {
			problems = append(problems, fmt.Sprintf("agency_duration must be between %s and %s", minAgencyDuration, maxAgencyDuration))
		}
	}
	if !written {
		return problems
	}
	if r.AgencyName == "" {
		if r.AgencyDomainID != "" || r.AgencyDomainName != "" {
			problems = append(problems, "agency_domain_id and agency_domain_name need agency_name (clear them with empty values to remove the agency)")
		}
		if durationWritten {
			// Dropped without a word, the operator would believe it set.
			problems = append(problems, "agency_duration needs agency_name")
		}
		r.AgencyDuration = 0
		return problems
	}
	if len(r.AgencyName) > maxNameLength || checkPrintable(r.AgencyName, maxNameLength) != nil || strings.ContainsAny(r.AgencyName, "/\\") {
		problems = append(problems, fmt.Sprintf("agency_name must be 1 to %d bytes of printable UTF-8 without slashes", maxNameLength))
	}
	switch {
	case (r.AgencyDomainID == "") == (r.AgencyDomainName == ""):
		problems = append(problems, "agency_name needs exactly one of agency_domain_id and agency_domain_name: the account that owns the agency (clear the other with an empty value)")
	case r.AgencyDomainID != "" && !idPattern.MatchString(r.AgencyDomainID):
		problems = append(problems, "agency_domain_id must be 1 to 64 letters, digits, '-' or '_'")
	case r.AgencyDomainName != "" && checkPrintable(r.AgencyDomainName, maxNameLength) != nil:
		problems = append(problems, fmt.Sprintf("agency_domain_name must be 1 to %d bytes of printable UTF-8", maxNameLength))
	}
	if r.AgencyDuration == 0 {
		r.AgencyDuration = defaultAgencyDuration
	}
	return problems
}

// agencyClients holds a connection's clients with agency credentials, by
// agencyRef.key. They live in memory only, and go with their connection
// (a config change) or their role (a role change).
type agencyClients struct {
	mu sync.Mutex
	m  map[string]*huawei.Client
	// retiring are the clients of roles replaced or deleted, until they
	// are closed: the reads still in flight through such a role share one,
	// instead of each upstream call of theirs assuming the agency anew.
	retiring map[*agencyRef]*huawei.Client
}

// clientFor is the client a read through via makes its upstream calls
// with: the mount's own, or one with via's agency credentials.
func (c *connection) clientFor(via *agencyRef) *huawei.Client {
	if via == nil {
		return c.client
	}
	c.agencies.mu.Lock()
	defer c.agencies.mu.Unlock()
	if cl := c.agencies.m[via.key]; cl != nil {
		return cl
	}
	if via.dropped.Load() {
		// The role changed during this read, which is judged again by the
		// stored role: it finishes, and leaves no client (nor credentials)
		// that no role would ever drop.
		if cl := c.agencies.retiring[via]; cl != nil {
			return cl
		}
		cl := c.client.WithAgency(via.agency)
		c.retire(via, cl)
		return cl
	}
	if c.agencies.m == nil {
		c.agencies.m = map[string]*huawei.Client{}
	}
	cl := c.client.WithAgency(via.agency)
	c.agencies.m[via.key] = cl
	return cl
}

// dropAgency forgets the credentials of via's key: the next read obtains new ones.
// Reads in flight through via finish with the old ones (see retire): the client is closed only once
// they must have ended, as a rotation's old connection is. Closing it at once
// would cancel an assume_role in flight, and with it the reads of every
// other role that shares the fetch (roles naming one agency share answers).
func (c *connection) dropAgency(via *agencyRef) {
	c.agencies.mu.Lock()
	defer c.agencies.mu.Unlock()
	if cl := c.agencies.m[via.key]; cl != nil {
		delete(c.agencies.m, via.key)
		c.retire(via, cl)
	}
}

// retire keeps cl for the reads in flight through via, a role replaced or
// deleted, and closes it once they must have ended. The caller holds
// c.agencies.mu.
func (c *connection) retire(via *agencyRef, cl *huawei.Client) {
	if c.agencies.retiring == nil {
		c.agencies.retiring = map[*agencyRef]*huawei.Client{}
	}
	c.agencies.retiring[via] = cl
	time.AfterFunc(2*c.cfg.RequestTimeout, func() {
		c.agencies.mu.Lock()
		if c.agencies.retiring[via] == cl {
			delete(c.agencies.retiring, via)
		}
		c.agencies.mu.Unlock()
		cl.Close()
	})
}

// roleChanged drops the agency credentials of a role replaced or deleted,
// on this node's connection.
func (b *backend) roleChanged(old *role) {
	if old.agency == nil {
		return
	}
	old.agency.dropped.Store(true)
	if c := b.conn.Load(); c != nil {
		c.dropAgency(old.agency)
	}
}
