package sms

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/pluginidentityutil"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// The id_token method's JWT comes from where whoever registered the plugin
// says, never from where a config writer says: a grant to update the config
// that could name a file would read any file the Vault server can read and
// send it to a host of the writer's choice.
const (
	// envIDTokenFile names a file holding the JWT, read afresh for every
	// exchange (a Kubernetes projected service-account token is rotated by
	// the kubelet): vault plugin register -env SMS_ID_TOKEN_FILE=/path ...
	envIDTokenFile = "SMS_ID_TOKEN_FILE" //nolint:gosec // G101: the name of an environment variable, not a credential
	// envIDTokenHosts lists, comma-separated, the hosts that may receive
	// the JWT (iam_endpoint) and the IAM token it buys (endpoint): exact
	// names or addresses ("iam.corp.example", "127.0.0.1"), or "*.domain"
	// for every host under a domain. It replaces the default, which is
	// Huawei Cloud's own IAM and SMS hosts (huaweiServiceHost): not whole
	// domains, whose other hosts (OBS buckets) any customer names.
	envIDTokenHosts = "SMS_ID_TOKEN_HOSTS" //nolint:gosec // G101: a variable's name, not a credential

	maxIDTokenFile = 16 << 10
)

// idTokenFile is the JWT file named by the plugin's environment, or "".
func (b *backend) idTokenFile() string { return strings.TrimSpace(b.getenv(envIDTokenFile)) }

// idTokenSource returns where the config's JWT comes from, in the order of
// preference: the file, then Vault's plugin identity token. It is nil for
// the other methods. When neither source is available (the plugin was
// registered again without the file), every exchange fails saying so.
func (b *backend) idTokenSource(cfg *smsConfig) func(context.Context) (huawei.Secret, error) {
	if cfg.authMethod() != authMethodIDToken {
		return nil
	}
	if problems := b.idTokenHostProblems(cfg); len(problems) > 0 {
		// Registered again with fewer hosts since the config was written:
		// nothing goes to the ones the registration no longer allows.
		err := errors.New(strings.Join(problems, "; "))
		return func(context.Context) (huawei.Secret, error) { return "", err }
	}
	if path := b.idTokenFile(); path != "" {
		return func(context.Context) (huawei.Secret, error) { return readIDTokenFile(path) }
	}
	if cfg.IdentityTokenAudience != "" {
		return b.heldPluginIdentityToken(cfg.IdentityTokenAudience, cfg.IdentityTokenTTL)
	}
	return func(context.Context) (huawei.Secret, error) { return "", errNoIDTokenSource }
}

var errNoIDTokenSource = fmt.Errorf("no JWT source: the plugin was registered without -env %s=<path> and the config sets no identity_token_audience", envIDTokenFile)

// readIDTokenFile reads the JWT and refuses anything but one compact JWS,
// without repeating what the file holds: it may be any file at all.
func readIDTokenFile(path string) (huawei.Secret, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the path is the plugin registration's, not a request's
	if err != nil {
		return "", fmt.Errorf("the ID token file named by %s could not be read (%s)", envIDTokenFile, describeFileError(err))
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(io.LimitReader(f, maxIDTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("the ID token file named by %s could not be read (%s)", envIDTokenFile, describeFileError(err))
	}
	if len(raw) > maxIDTokenFile {
		return "", fmt.Errorf("the ID token file named by %s is larger than %d KiB: it is not an ID token", envIDTokenFile, maxIDTokenFile>>10)
	}
	jwt := strings.TrimSpace(string(raw))
	if err := checkCompactJWS(jwt); err != nil {
		return "", fmt.Errorf("the ID token file named by %s does not hold an ID token: %w", envIDTokenFile, err)
	}
	return huawei.Secret(jwt), nil
}

// describeFileError names what went wrong without the path's own error
// text beyond the operating system's reason.
func describeFileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "read failed"
}

// checkCompactJWS accepts one JWS in compact serialisation: three base64url
// parts, a header that is a JSON object naming a signing algorithm, and a
// signature. Its errors never quote the text.
func checkCompactJWS(s string) error {
	if s == "" {
		return errors.New("it is empty")
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return errors.New("a compact JWS has three base64url parts separated by dots")
	}
	for _, p := range parts {
		if p == "" {
			return errors.New("a compact JWS has three non-empty base64url parts")
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !isNameChar(c) { // base64url: letters, digits, '-' and '_'

				return errors.New("a compact JWS holds only base64url characters and two dots")
			}
		}
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return errors.New("its header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(header, &h) != nil || h.Alg == "" || strings.EqualFold(h.Alg, "none") {
		return errors.New("its header is not a JSON object naming a signing algorithm")
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
		return errors.New("its payload is not base64url")
	}
	return nil
}

// pluginIdentityToken asks Vault (Enterprise) for a plugin identity token.
func (b *backend) pluginIdentityToken(ctx context.Context, audience string, ttl time.Duration) (huawei.Secret, error) {
	sys := b.System()
	if sys == nil {
		return "", errors.New("the system view of Vault is not available")
	}
	resp, err := sys.GenerateIdentityToken(ctx, &pluginutil.IdentityTokenRequest{Audience: audience, TTL: ttl})
	if err != nil {
		return "", identityTokenError(err)
	}
	return huawei.Secret(resp.Token.Token()), nil
}

// heldPluginIdentityToken asks Vault for a plugin identity token and uses
// it for half its TTL. Vault mints a different JWT at every call (its times
// move), and a refusal is remembered for the refused JWT only: asked afresh
// at every read, each read during a remembered refusal would be an exchange
// with IAM, and a call to Vault.
func (b *backend) heldPluginIdentityToken(audience string, ttl time.Duration) func(context.Context) (huawei.Secret, error) {
	var (
		mu    sync.Mutex
		held  huawei.Secret
		until time.Time
	)
	return func(ctx context.Context) (huawei.Secret, error) {
		mu.Lock()
		defer mu.Unlock()
		if held != "" && b.now().Before(until) {
			return held, nil
		}
		start := b.now()
		tok, err := b.pluginIdentityToken(ctx, audience, ttl)
		if err != nil {
			return "", err
		}
		held, until = tok, start.Add(ttl/2)
		return tok, nil
	}
}

// identityTokenError explains Vault's refusal to issue a plugin identity
// token; on Community Edition it points at the file option.
func identityTokenError(err error) error {
	if errors.Is(err, pluginidentityutil.ErrPluginWorkloadIdentityUnsupported) ||
		strings.Contains(err.Error(), pluginidentityutil.ErrPluginWorkloadIdentityUnsupported.Error()) {
		return fmt.Errorf("identity_token_audience needs Vault Enterprise's plugin identity tokens, which this Vault "+
			"does not issue (Community Edition): register the plugin with -env %s=<path of a file holding the JWT> "+
			"(for example a Kubernetes projected service-account token) instead", envIDTokenFile)
	}
	return fmt.Errorf("this Vault did not issue a plugin identity token: %s", huawei.Printable(err.Error()))
}

// checkIDTokenSource is the write's check of the id_token method: a JWT
// source exists (a file that holds one now; plugin identity tokens are
// checked before, see pathConfigWrite), and the hosts the JWT and its IAM token go
// to are ones the plugin's registration allows.
func (b *backend) checkIDTokenSource(cfg *smsConfig) []string {
	var problems []string
	switch path := b.idTokenFile(); {
	case path != "":
		if _, err := readIDTokenFile(path); err != nil {
			problems = append(problems, err.Error())
		}
	case cfg.IdentityTokenAudience == "":
		problems = append(problems, fmt.Sprintf("the id_token method needs a JWT: register the plugin with -env %s=<path of a file holding it> "+
			"(vault plugin register -env ...), or set identity_token_audience to use Vault Enterprise's plugin identity tokens", envIDTokenFile))
	}
	return append(problems, b.idTokenHostProblems(cfg)...)
}

// huaweiServiceHost is Huawei Cloud's IAM or SMS service, global or in a
// region: iam.myhuaweicloud.com, sms.ap-southeast-3.myhuaweicloud.com, and
// the same under myhuaweicloud.eu.
var huaweiServiceHost = regexp.MustCompile(`^(iam|sms)(\.[a-z]{2,}(-[a-z0-9]+){1,4})?\.myhuaweicloud\.(com|eu)$`)

// idTokenHostProblems names the config's endpoints that the plugin's
// registration does not allow the JWT and its IAM token to go to, and a
// ca_cert it did not allow: a CA of the config writer's choice would let
// whoever holds it impersonate IAM to the engine.
func (b *backend) idTokenHostProblems(cfg *smsConfig) []string {
	var problems []string
	allowed := b.idTokenHosts()
	where := "Huawei Cloud's own IAM and SMS hosts (iam.myhuaweicloud.com, {iam,sms}.<region>.myhuaweicloud.com, and the same under .eu)"
	if allowed != nil {
		where = strings.Join(allowed, ", ")
	}
	for _, f := range []struct{ name, url string }{{"iam_endpoint", cfg.IAMEndpoint}, {"endpoint", cfg.endpointURL()}} {
		if !hostAllowed(f.url, allowed) {
			problems = append(problems, fmt.Sprintf("%s: with the id_token method the JWT and the IAM token it buys go only to %s "+
				"(whoever registers the plugin may name others, with -env %s=<hosts>)", f.name, where, envIDTokenHosts))
		}
	}
	if cfg.CACert != "" && allowed == nil {
		problems = append(problems, fmt.Sprintf("ca_cert: with the id_token method a private CA is trusted only when whoever registers the plugin "+
			"names the hosts (-env %s=<hosts>); Huawei Cloud's own hosts are verified with the system's roots", envIDTokenHosts))
	}
	return problems
}

// idTokenHosts is the registration's list of hosts, or nil for the default.
func (b *backend) idTokenHosts() []string {
	var out []string
	for _, h := range strings.Split(b.getenv(envIDTokenHosts), ",") {
		if h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// hostAllowed reports whether raw's host is one of the allowed hosts (an
// exact name or address, or under a "*.domain"), or, with no list, one of
// Huawei Cloud's own IAM and SMS hosts.
func hostAllowed(raw string, allowed []string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return false
	}
	if allowed == nil {
		return huaweiServiceHost.MatchString(host)
	}
	ip := net.ParseIP(host)
	for _, a := range allowed {
		switch domain, wild := strings.CutPrefix(a, "*."); {
		case wild && ip == nil && strings.HasSuffix(host, "."+domain):
			return true
		case !wild && (host == a || ip != nil && ip.Equal(net.ParseIP(a))):
			return true
		}
	}
	return false
}

// idTokenReadFields are what a config read shows of the id_token method.
func (b *backend) idTokenReadFields(cfg *smsConfig, data map[string]any) {
	data["idp_id"] = cfg.IDPID
	cfg.PopulatePluginIdentityTokenData(data)
	if cfg.authMethod() == authMethodIDToken {
		data["id_token_file"] = b.idTokenFile()
	}
}
