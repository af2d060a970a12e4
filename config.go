package sms

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/helper/pluginidentityutil"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// Authentication methods, as reported by a config read in auth_method.
const (
	authMethodToken     = huawei.MethodToken
	authMethodAccessKey = huawei.MethodAccessKey
	authMethodPassword  = huawei.MethodPassword
	authMethodIDToken   = huawei.MethodIDToken
)

// Defaults and bounds of the tunable settings. The bounds exist to turn typos
// ("cache_ttl=5000h") into a 400 instead of a surprise.
const (
	defaultCacheTTL        = 5 * time.Minute
	defaultCacheMaxEntries = 10000
	defaultRequestTimeout  = 10 * time.Second
	defaultMaxRetries      = 2
	defaultIAMEndpoint     = "https://iam.myhuaweicloud.com"

	maxCacheTTL       = 24 * time.Hour
	maxCacheEntries   = 1000000
	minRequestTimeout = time.Second
	maxRequestTimeout = 5 * time.Minute
	maxRetriesLimit   = 10
	maxUpstreamRPS    = 10000
	maxStaleIfError   = 7 * 24 * time.Hour
	minRotationPeriod = time.Minute // Vault calls the periodic function about once a minute
	maxRotationPeriod = 10 * 365 * 24 * time.Hour
	maxTokenLength    = 16384
	// Shortest secrets accepted. Real tokens and keys are far longer, and
	// Huawei passwords are at least 6 characters; a shorter secret could not
	// be told apart from ordinary text, and so not be redacted from it.
	minSecretLength    = 8
	minPasswordLength  = 6
	maxCACertBytes     = 1 << 20
	maxEndpointLength  = 2048
	maxAccessKeyLength = 128
	maxSecretKeyLength = 256
	maxNameLength      = 255
	maxPasswordLength  = 1024
	maxAudienceLength  = 255
	// Bounds of identity_token_ttl: Vault's own keys cap it further.
	minIdentityTokenTTL     = time.Minute
	maxIdentityTokenTTL     = 24 * time.Hour
	defaultIdentityTokenTTL = time.Hour
)

var (
	regionPattern = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+){1,4}$`)
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// policyNamePattern is what Vault accepts as a password policy name.
	policyNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// secret holds a credential; it hides its value from fmt (see huawei.Secret).
type secret = huawei.Secret

// smsConfig is what sms/config stores (as JSON, under storage key "config").
type smsConfig struct {
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	CACert   string `json:"ca_cert,omitempty"`

	// Method 1: a static IAM token.
	Token secret `json:"token,omitempty"`

	// Method 2: AK/SK request signing.
	AccessKey     string `json:"access_key,omitempty"`
	SecretKey     secret `json:"secret_key,omitempty"`
	SecurityToken secret `json:"security_token,omitempty"`
	ProjectID     string `json:"project_id,omitempty"`
	DomainID      string `json:"domain_id,omitempty"`

	// Method 3: an IAM user whose token the engine obtains and renews.
	IAMEndpoint string `json:"iam_endpoint,omitempty"`
	Username    string `json:"username,omitempty"`
	Password    secret `json:"password,omitempty"`
	DomainName  string `json:"domain_name,omitempty"`

	// Method 4: an OpenID Connect ID token exchanged for an IAM token
	// (POST /v3.0/OS-AUTH/id-token/tokens), scoped by ProjectID, DomainID or
	// DomainName. The JWT is never stored: it comes from the file that
	// whoever registered the plugin named (SMS_ID_TOKEN_FILE), or from
	// Vault Enterprise's plugin identity tokens.
	IDPID string `json:"idp_id,omitempty"`
	// identity_token_audience and identity_token_ttl, as HashiCorp's
	// engines name and store them.
	pluginidentityutil.PluginIdentityTokenParams

	// Root-credential rotation (sms/config/rotate-root).
	PasswordPolicy string        `json:"password_policy,omitempty"` // a Vault password policy for new passwords
	RotationPeriod time.Duration `json:"rotation_period"`           // 0: no scheduled rotation
	LastRotated    time.Time     `json:"last_rotated,omitempty"`
	// Rotations counts the rotations of these credentials (writes carry it
	// over): a node whose credential is refused moves only to a stored
	// config with more, never back to an older password.
	Rotations uint64 `json:"rotations,omitempty"`
	// CredentialsSetAt is when a person last wrote the credentials: the
	// schedule counts from there until the first rotation.
	CredentialsSetAt time.Time `json:"credentials_set_at,omitempty"`
	// Generation changes with every config write but a rotation's: answers
	// cached under one generation are dropped when another is loaded, on
	// this node or another, while a rotation drops nothing users see. It is
	// random, not a counter, so that a config deleted and written again
	// cannot take the generation of the one before.
	Generation uint64 `json:"generation"`

	CacheTTL        time.Duration `json:"cache_ttl"`
	CacheMaxEntries int           `json:"cache_max_entries"`
	RequestTimeout  time.Duration `json:"request_timeout"`
	MaxRetries      int           `json:"max_retries"`
	MaxUpstreamRPS  float64       `json:"max_upstream_rps"`
	StaleIfError    time.Duration `json:"stale_if_error"`
}

func defaultConfig() *smsConfig {
	return &smsConfig{
		IAMEndpoint:               defaultIAMEndpoint,
		PluginIdentityTokenParams: pluginidentityutil.PluginIdentityTokenParams{IdentityTokenTTL: defaultIdentityTokenTTL},
		CacheTTL:                  defaultCacheTTL,
		CacheMaxEntries:           defaultCacheMaxEntries,
		RequestTimeout:            defaultRequestTimeout,
		MaxRetries:                defaultMaxRetries,
	}
}

// clone returns a copy that an update can change without touching the original.
func (c *smsConfig) clone() *smsConfig {
	cp := *c
	return &cp
}

// authMethod names the configured method, or "" when none or several are set
// (validate reports those cases).
func (c *smsConfig) authMethod() string {
	methods := c.methodsInUse()
	if len(methods) != 1 {
		return ""
	}
	return methods[0].name
}

type methodFields struct {
	name string
	set  []string // the method's fields that have a value
}

func (c *smsConfig) methodsInUse() []methodFields {
	var out []methodFields
	add := func(name string, fields map[string]bool) {
		var set []string
		for _, f := range slices.Sorted(maps.Keys(fields)) {
			if fields[f] {
				set = append(set, f)
			}
		}
		if len(set) > 0 {
			out = append(out, methodFields{name: name, set: set})
		}
	}
	// project_id, domain_id and domain_name scope the ID token method's
	// token when idp_id (or its token source) is set, and belong to the
	// access key and password methods otherwise.
	idToken := c.IDPID != "" || c.IdentityTokenAudience != ""
	add(authMethodToken, map[string]bool{"token": c.Token != ""})
	ak := map[string]bool{"access_key": c.AccessKey != "", "secret_key": c.SecretKey != "", "security_token": c.SecurityToken != ""}
	pw := map[string]bool{"username": c.Username != "", "password": c.Password != ""}
	if !idToken {
		ak["project_id"], ak["domain_id"] = c.ProjectID != "", c.DomainID != ""
		pw["domain_name"] = c.DomainName != ""
	}
	add(authMethodAccessKey, ak)
	add(authMethodPassword, pw)
	if idToken {
		add(authMethodIDToken, map[string]bool{
			"idp_id": c.IDPID != "", "identity_token_audience": c.IdentityTokenAudience != "",
			"project_id": c.ProjectID != "", "domain_id": c.DomainID != "", "domain_name": c.DomainName != "",
		})
	}
	return out
}

// endpointURL is the SMS base URL: endpoint as written, or the one derived
// from region.
func (c *smsConfig) endpointURL() string {
	if c.Endpoint != "" {
		return strings.TrimRight(c.Endpoint, "/")
	}
	if c.Region != "" {
		return "https://sms." + c.Region + ".myhuaweicloud.com"
	}
	return ""
}

// credentialTargets are what decide where, and for whom, the stored secrets
// are used: the SMS endpoint (however it is written), the CA trusted for it,
// the IAM endpoint where IAM is called with them (password method; access
// keys, for rotation), and for the password method the user and account the
// password logs in as. URLs are compared normalised, so that rewriting the
// same endpoint differently is not a change.
func (c *smsConfig) credentialTargets() map[string]string {
	t := map[string]string{
		"endpoint": normalizeURL(c.endpointURL()),
		"ca_cert":  strings.TrimSpace(c.CACert),
	}
	switch c.authMethod() {
	case authMethodPassword:
		t["iam_endpoint"] = normalizeURL(c.IAMEndpoint)
		t["username"] = c.Username
		t["domain_name"] = c.DomainName
	case authMethodAccessKey:
		// rotate-root sends signed requests to IAM: a signature is a
		// credential for 15 minutes.
		t["iam_endpoint"] = normalizeURL(c.IAMEndpoint)
	case authMethodIDToken:
		// No secret is stored to re-supply: the hosts the JWT and its token
		// may go to are bounded by the plugin's registration instead (see
		// idTokenHostsAllowed).
		t["iam_endpoint"] = normalizeURL(c.IAMEndpoint)
	}
	return t
}

// movedTargets names the fields whose change moves a credential target
// between two configs.
func movedTargets(from, to *smsConfig, written map[string]any) []string {
	before, after := from.credentialTargets(), to.credentialTargets()
	var moved []string
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if before[name] == after[name] {
			continue
		}
		if name == "endpoint" {
			// Say which of the two ways of naming it the write used.
			for _, f := range []string{"endpoint", "region"} {
				if _, ok := written[f]; ok {
					moved = append(moved, f)
				}
			}
			continue
		}
		moved = append(moved, name)
	}
	return moved
}

// normalizeURL lower-cases scheme and host, drops a default port and a
// trailing slash.
func normalizeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return raw
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// methodSecrets lists the secret fields the config's auth method holds.
func (c *smsConfig) methodSecrets() []string {
	switch c.authMethod() {
	case authMethodToken:
		return []string{"token"}
	case authMethodAccessKey:
		if c.SecurityToken != "" {
			return []string{"secret_key", "security_token"}
		}
		return []string{"secret_key"}
	case authMethodPassword:
		return []string{"password"}
	}
	return nil
}

// validate returns every problem with the config, each naming its field.
func (c *smsConfig) validate() []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	switch {
	case c.Endpoint != "" && c.Region != "":
		fail(`endpoint and region are both set: set one of them (clear the other with an empty value, e.g. region="")`)
	case c.Endpoint == "" && c.Region == "":
		fail("endpoint or region is required (e.g. endpoint=https://sms.ap-southeast-3.myhuaweicloud.com or region=ap-southeast-3)")
	case c.Endpoint != "":
		if err := checkEndpoint(c.Endpoint); err != nil {
			fail("endpoint %s", err)
		}
	default:
		if len(c.Region) > 64 || !regionPattern.MatchString(c.Region) {
			fail("region must look like ap-southeast-3 (lower-case letters, digits and hyphens)")
		}
	}
	if c.IAMEndpoint != "" {
		if err := checkEndpoint(c.IAMEndpoint); err != nil {
			fail("iam_endpoint %s", err)
		}
	}
	if c.CACert != "" {
		if len(c.CACert) > maxCACertBytes {
			fail("ca_cert is larger than %d bytes", maxCACertBytes)
		} else if !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CACert)) {
			fail("ca_cert must be a PEM bundle holding at least one certificate")
		}
	}

	errs = append(errs, c.validateCredentials()...)

	if c.CacheTTL < 0 || c.CacheTTL > maxCacheTTL {
		fail("cache_ttl must be between 0 (no caching) and %s", maxCacheTTL)
	}
	if c.CacheMaxEntries < 1 || c.CacheMaxEntries > maxCacheEntries {
		fail("cache_max_entries must be between 1 and %d", maxCacheEntries)
	}
	if c.RequestTimeout < minRequestTimeout || c.RequestTimeout > maxRequestTimeout {
		fail("request_timeout must be between %s and %s", minRequestTimeout, maxRequestTimeout)
	}
	if c.MaxRetries < 0 || c.MaxRetries > maxRetriesLimit {
		fail("max_retries must be between 0 and %d", maxRetriesLimit)
	}
	if math.IsNaN(c.MaxUpstreamRPS) || c.MaxUpstreamRPS < 0 || c.MaxUpstreamRPS > maxUpstreamRPS {
		fail("max_upstream_rps must be between 0 (unlimited) and %d", maxUpstreamRPS)
	}
	if c.StaleIfError < 0 || c.StaleIfError > maxStaleIfError {
		fail("stale_if_error must be between 0 (off) and %s", maxStaleIfError)
	}
	if c.RotationPeriod != 0 && (c.RotationPeriod < minRotationPeriod || c.RotationPeriod > maxRotationPeriod) {
		fail("rotation_period must be 0 (off) or between %s and %s", minRotationPeriod, maxRotationPeriod)
	} else if c.RotationPeriod != 0 && !c.rotatable() {
		// The schedule would fail at every attempt, forever.
		fail("rotation_period needs a credential that can be rotated: a permanent access key (no security_token) or the password method")
	}
	if c.PasswordPolicy != "" && !policyNamePattern.MatchString(c.PasswordPolicy) {
		fail("password_policy must name a Vault password policy: 1 to 128 letters, digits, '-', '_' or '.'")
	}
	return errs
}

func (c *smsConfig) validateCredentials() []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	methods := c.methodsInUse()
	switch len(methods) {
	case 0:
		return []string{"no credentials: set token, or access_key and secret_key, or username, password and domain_name, or idp_id (the id_token method)"}
	case 1:
	default:
		var parts []string
		for _, m := range methods {
			parts = append(parts, strings.Join(m.set, ", "))
		}
		return []string{fmt.Sprintf("credentials of more than one auth method are set (%s): configure exactly one "+
			"method and clear the others' fields with empty values, e.g. token=\"\"", strings.Join(parts, "; "))}
	}

	switch methods[0].name {
	case authMethodToken:
		if err := checkVisibleASCII(string(c.Token), maxTokenLength); err != nil || len(c.Token) < minSecretLength {
			fail("token must be %d to %d printable ASCII characters without spaces", minSecretLength, maxTokenLength)
		}
	case authMethodAccessKey:
		if c.AccessKey == "" || c.SecretKey == "" {
			fail("access_key and secret_key must be set together (set: %s)", strings.Join(methods[0].set, ", "))
		}
		if err := checkVisibleASCII(c.AccessKey, maxAccessKeyLength); c.AccessKey != "" && err != nil {
			fail("access_key %s", err)
		}
		if err := checkVisibleASCII(string(c.SecretKey), maxSecretKeyLength); c.SecretKey != "" && (err != nil || len(c.SecretKey) < minSecretLength) {
			fail("secret_key must be %d to %d printable ASCII characters without spaces", minSecretLength, maxSecretKeyLength)
		}
		if err := checkVisibleASCII(string(c.SecurityToken), maxTokenLength); c.SecurityToken != "" && (err != nil || len(c.SecurityToken) < minSecretLength) {
			fail("security_token must be %d to %d printable ASCII characters without spaces", minSecretLength, maxTokenLength)
		}
		errs = append(errs, c.scopeProblems()...)
	case authMethodPassword:
		var missing []string
		for name, v := range map[string]string{"username": c.Username, "password": string(c.Password), "domain_name": c.DomainName} {
			if v == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			fail("username, password and domain_name must be set together (missing: %s)", strings.Join(missing, ", "))
		}
		if err := checkPrintable(c.Username, maxNameLength); c.Username != "" && err != nil {
			fail("username %s", err)
		}
		if err := checkPrintable(string(c.Password), maxPasswordLength); c.Password != "" && (err != nil || len(c.Password) < minPasswordLength || huawei.HoldsHidden(string(c.Password))) {
			fail("password must be %d to %d bytes of valid UTF-8 without control, format or other hidden characters (or U+FFFD)", minPasswordLength, maxPasswordLength)
		}
		errs = append(errs, c.scopeProblems()...)
	case authMethodIDToken:
		errs = append(errs, c.validateIDToken()...)
	}
	return errs
}

// scopeProblems checks the project and account fields that are set:
// project_id and domain_id (access keys, id_token), domain_name (password,
// id_token). Validation runs it only for the method the fields belong to.
func (c *smsConfig) scopeProblems() []string {
	var errs []string
	if c.ProjectID != "" && !idPattern.MatchString(c.ProjectID) {
		errs = append(errs, "project_id must be 1 to 64 letters, digits, '-' or '_'")
	}
	if c.DomainID != "" && !idPattern.MatchString(c.DomainID) {
		errs = append(errs, "domain_id must be 1 to 64 letters, digits, '-' or '_'")
	}
	if err := checkPrintable(c.DomainName, maxNameLength); c.DomainName != "" && err != nil {
		errs = append(errs, "domain_name "+err.Error())
	}
	return errs
}

// validateIDToken checks the id_token method's own fields; where its JWT
// comes from is checked by the write, which knows the plugin's environment.
func (c *smsConfig) validateIDToken() []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.IDPID == "" {
		fail("idp_id is required by the id_token method: the ID of the identity provider in IAM")
	} else if !idPattern.MatchString(c.IDPID) {
		fail("idp_id must be 1 to 64 letters, digits, '-' or '_'")
	}
	scopes := 0
	for _, v := range []string{c.ProjectID, c.DomainID, c.DomainName} {
		if v != "" {
			scopes++
		}
	}
	if scopes != 1 {
		fail("the id_token method needs exactly one scope for its token: set one of project_id, domain_id or domain_name (clear the others with empty values)")
	}
	errs = append(errs, c.scopeProblems()...)
	if c.IAMEndpoint == "" {
		fail("iam_endpoint is required by the id_token method")
	}
	if c.IdentityTokenAudience != "" {
		if err := checkPrintable(c.IdentityTokenAudience, maxAudienceLength); err != nil {
			fail("identity_token_audience %s", err)
		}
	}
	if c.IdentityTokenTTL < minIdentityTokenTTL || c.IdentityTokenTTL > maxIdentityTokenTTL {
		fail("identity_token_ttl must be between %s and %s", minIdentityTokenTTL, maxIdentityTokenTTL)
	}
	return errs
}

// checkEndpoint enforces https, allowing plain http only towards loopback so
// that a local stand-in works while credentials never cross a network in clear.
func checkEndpoint(raw string) error {
	if len(raw) > maxEndpointLength {
		return fmt.Errorf("is longer than %d characters", maxEndpointLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("must be an absolute URL such as https://sms.ap-southeast-3.myhuaweicloud.com")
	}
	if u.User != nil {
		return fmt.Errorf("must not contain user information")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("must have a port between 1 and 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("must have a port between 1 and 65535")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.HasSuffix(raw, "#") {
		return fmt.Errorf("must not contain a query or a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https (plain http is accepted only for loopback hosts such as 127.0.0.1)")
	default:
		return fmt.Errorf("must use https")
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkVisibleASCII accepts 1 to max printable ASCII characters without
// spaces: what fits in an HTTP header and what Huawei credentials look like.
func checkVisibleASCII(s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("must be 1 to %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return fmt.Errorf("must contain only printable ASCII characters without spaces")
		}
	}
	return nil
}

// checkPrintable accepts 1 to max characters of any script, but no control
// characters.
func checkPrintable(s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("must be 1 to %d bytes", max)
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return fmt.Errorf("must be valid UTF-8 without control characters")
		}
	}
	return nil
}

// rotatable reports whether rotate-root can replace the credentials: a
// token and temporary keys expire on their own instead.
func (c *smsConfig) rotatable() bool {
	switch c.authMethod() {
	case authMethodAccessKey:
		return c.SecurityToken == ""
	case authMethodPassword:
		return true
	}
	return false
}

// rotationDue is when the schedule next rotates the credentials, or the zero
// time when there is no schedule.
func (c *smsConfig) rotationDue() time.Time {
	if c.RotationPeriod <= 0 {
		return time.Time{}
	}
	from := c.LastRotated
	if c.CredentialsSetAt.After(from) {
		from = c.CredentialsSetAt
	}
	return from.Add(c.RotationPeriod)
}

// newGeneration returns a random generation other than the previous one
// (and other than 0, which no config has).
func newGeneration(prev uint64) uint64 {
	for {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		if g := binary.LittleEndian.Uint64(b[:]); g != 0 && g != prev {
			return g
		}
	}
}
