package sms

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const configStorageKey = "config"

// secretFields are write-only: never returned by a read, never logged.
var secretFields = []string{"token", "secret_key", "security_token", "password"}

// configField is one writable setting: its schema and how a written value
// lands in smsConfig. One table serves the schema, path-help and updates.
type configField struct {
	name   string
	schema *framework.FieldSchema
	apply  func(c *smsConfig, v any)
}

func str(set func(c *smsConfig, v string)) func(*smsConfig, any) {
	return func(c *smsConfig, v any) { set(c, strings.TrimSpace(v.(string))) }
}

func seconds(set func(c *smsConfig, v time.Duration)) func(*smsConfig, any) {
	return func(c *smsConfig, v any) {
		secs := v.(int)
		if secs > maxDurationSeconds {
			// Would overflow time.Duration and could wrap into the valid range;
			// -1 is out of every range, so validation names the field.
			set(c, -1)
			return
		}
		set(c, time.Duration(secs)*time.Second)
	}
}

// maxDurationSeconds is far above every bound and far below an overflow.
const maxDurationSeconds = 1 << 30

func sensitive(name string) *framework.DisplayAttributes {
	return &framework.DisplayAttributes{Name: name, Sensitive: true}
}

var configFields = []configField{
	{"endpoint", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Base URL of the SMS API, e.g. https://sms.ap-southeast-3.myhuaweicloud.com. https is required; http is accepted only for loopback hosts. Set this or region."},
		str(func(c *smsConfig, v string) { c.Endpoint = v })},
	{"region", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Huawei Cloud region, e.g. ap-southeast-3; the endpoint becomes https://sms.<region>.myhuaweicloud.com. Set this or endpoint."},
		str(func(c *smsConfig, v string) { c.Region = v })},
	{"ca_cert", &framework.FieldSchema{Type: framework.TypeString,
		Description: "PEM bundle of a private CA to trust, in addition to the system roots, for the SMS and IAM endpoints."},
		str(func(c *smsConfig, v string) { c.CACert = v })},
	{"token", &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive("Token"),
		Description: "Auth method token: an IAM user token sent as X-Auth-Token (1 to 16384 characters). Write-only."},
		str(func(c *smsConfig, v string) { c.Token = secret(v) })},
	{"access_key", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method access_key: the access key ID (AK) requests are signed with."},
		str(func(c *smsConfig, v string) { c.AccessKey = v })},
	{"secret_key", &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive("Secret key"),
		Description: "Auth method access_key: the secret access key (SK). Write-only."},
		str(func(c *smsConfig, v string) { c.SecretKey = secret(v) })},
	{"security_token", &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive("Security token"),
		Description: "Auth method access_key: the security token of temporary AK/SK credentials, sent as X-Security-Token. Write-only."},
		str(func(c *smsConfig, v string) { c.SecurityToken = secret(v) })},
	{"project_id", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method access_key: project ID sent (and signed) as X-Project-Id."},
		str(func(c *smsConfig, v string) { c.ProjectID = v })},
	{"domain_id", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method access_key: account (domain) ID sent (and signed) as X-Domain-Id."},
		str(func(c *smsConfig, v string) { c.DomainID = v })},
	{"iam_endpoint", &framework.FieldSchema{Type: framework.TypeString, Default: defaultIAMEndpoint,
		Description: "Base URL of IAM, for the password method's tokens and for rotate-root. Same https rule as endpoint."},
		str(func(c *smsConfig, v string) { c.IAMEndpoint = v })},
	{"username", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method password: IAM user name."},
		str(func(c *smsConfig, v string) { c.Username = v })},
	{"password", &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive("Password"),
		Description: "Auth method password: IAM user password. Write-only."},
		// Passwords may begin or end with spaces: kept exactly as written.
		func(c *smsConfig, v any) { c.Password = secret(v.(string)) }},
	{"domain_name", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method password: account (domain) name the user belongs to; the token is scoped to it."},
		str(func(c *smsConfig, v string) { c.DomainName = v })},
	{"idp_id", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method id_token: ID of the OpenID Connect identity provider in IAM, sent as X-Idp-Id. The JWT comes from the file named by SMS_ID_TOKEN_FILE at plugin registration, or from Vault Enterprise's plugin identity tokens (identity_token_audience). Scope the token with one of project_id, domain_id or domain_name."},
		str(func(c *smsConfig, v string) { c.IDPID = v })},
	{"identity_token_audience", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method id_token on Vault Enterprise: audience of the plugin identity token exchanged with IAM (the identity provider's client ID). Vault Community Edition does not issue these tokens: use SMS_ID_TOKEN_FILE."},
		str(func(c *smsConfig, v string) { c.IdentityTokenAudience = v })},
	{"identity_token_ttl", &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultIdentityTokenTTL.Seconds()),
		Description: "Auth method id_token on Vault Enterprise: lifetime of the plugin identity tokens (1m to 24h)."},
		seconds(func(c *smsConfig, v time.Duration) { c.IdentityTokenTTL = v })},
	{"password_policy", &framework.FieldSchema{Type: framework.TypeString,
		Description: "Name of a Vault password policy (sys/policies/password) that rotate-root draws new IAM passwords from; empty: the engine's own generator."},
		str(func(c *smsConfig, v string) { c.PasswordPolicy = v })},
	{"rotation_period", &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: 0,
		Description: "Rotate the root credential (access key or password) this long after the last rotation; 0 turns scheduled rotation off. At least 1m when set."},
		seconds(func(c *smsConfig, v time.Duration) { c.RotationPeriod = v })},
	{"cache_ttl", &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultCacheTTL.Seconds()),
		Description: "How long a passphrase is served from the cache. 0 turns caching off."},
		seconds(func(c *smsConfig, v time.Duration) { c.CacheTTL = v })},
	{"cache_max_entries", &framework.FieldSchema{Type: framework.TypeInt, Default: defaultCacheMaxEntries,
		Description: "Most tasks held in the cache (each with its passphrase and metadata); the least recently used go first."},
		func(c *smsConfig, v any) { c.CacheMaxEntries = v.(int) }},
	{"request_timeout", &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultRequestTimeout.Seconds()),
		Description: "Bound on one upstream fetch, retries and rate-limit waits included; past it the read fails with 504."},
		seconds(func(c *smsConfig, v time.Duration) { c.RequestTimeout = v })},
	{"max_retries", &framework.FieldSchema{Type: framework.TypeInt, Default: defaultMaxRetries,
		Description: "Retries after a connection error, 429 or 5xx (not 501), with exponential backoff and jitter."},
		func(c *smsConfig, v any) { c.MaxRetries = v.(int) }},
	{"max_upstream_rps", &framework.FieldSchema{Type: framework.TypeFloat, Default: 0,
		Description: "Most requests per second this mount sends to SMS; 0 means unlimited."},
		func(c *smsConfig, v any) { c.MaxUpstreamRPS = v.(float64) }},
	{"stale_if_error", &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: 0,
		Description: "When SMS fails transiently, serve an expired entry up to this long past cache_ttl, with a warning. 0 turns it off."},
		seconds(func(c *smsConfig, v time.Duration) { c.StaleIfError = v })},
}

func configSchema() map[string]*framework.FieldSchema {
	out := make(map[string]*framework.FieldSchema, len(configFields))
	for _, f := range configFields {
		out[f.name] = f.schema
	}
	return out
}

// configReadSchema describes the read response: every setting but the
// secrets, plus which secrets are set.
func configReadSchema() map[string]*framework.FieldSchema {
	out := configSchema()
	for _, name := range secretFields {
		delete(out, name)
		out[name+"_set"] = &framework.FieldSchema{Type: framework.TypeBool, Description: "Whether " + name + " is set."}
	}
	out["auth_method"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The configured auth method: token, access_key, password or id_token."}
	out["id_token_file"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Auth method id_token: the JWT file named by SMS_ID_TOKEN_FILE at plugin registration, or empty (its content is never shown)."}
	out["last_rotated"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "When rotate-root last rotated the credential (RFC 3339), or empty."}
	out["next_rotation"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "When the schedule rotates the credential next (RFC 3339), or empty without rotation_period."}
	out["last_rotation_error"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Why the last scheduled rotation on this node failed, or empty."}
	out["rotation_backoff_until"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "After failed scheduled rotations, no scheduled rotation on this node before this time (RFC 3339), or empty."}
	out["rotation_unsettled"] = &framework.FieldSchema{Type: framework.TypeBool,
		Description: "Whether a rotation is pending in the write-ahead log: running, interrupted, or sent to IAM without an answer (unsettled)."}
	out["rotation_unsettled_since"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "When the pending rotation's outcome became unknown, or it started (RFC 3339), or empty."}
	out["rotation_settle_after"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The earliest time the write-ahead log rollback settles the pending rotation (RFC 3339), or empty."}
	out["rotation_unsettled_detail"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "What the pending rotation waits for and what the engine will do, or empty."}
	out["password_expires_at"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Password method: when IAM says the user's password expires (token.user.password_expires_at, RFC 3339); empty when it never expires or no token has said yet."}
	return out
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:        configStorageKey,
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "sms"},
		Fields:         configSchema(),
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				Summary:      "Read the engine's configuration, without its secrets.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "configuration"},
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: configReadSchema()}},
				},
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:     b.pathConfigWrite,
				Summary:      "Configure the SMS endpoint, credentials and cache.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:    map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:     b.pathConfigWrite,
				Summary:      "Change the fields named in the request; the others keep their values.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:    map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:     b.pathConfigDelete,
				Summary:      "Delete the configuration and flush the cache.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "delete", OperationSuffix: "configuration"},
				Responses:    map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
		},
		HelpSynopsis: "Configure how the engine reaches and authenticates to SMS.",
		HelpDescription: `
Set endpoint (or region) and exactly one auth method:
  token                                      a static IAM token (expires after 24 hours)
  access_key, secret_key [, security_token]  AK/SK request signing
  username, password, domain_name            an IAM user; the engine obtains and renews its token
  idp_id and one of project_id, domain_id, domain_name
                                             an OpenID Connect ID token (from the file named by
                                             SMS_ID_TOKEN_FILE at plugin registration, or Vault
                                             Enterprise's plugin identity tokens) exchanged for an
                                             IAM token; no secret is stored
A write changes only the fields it names; clear a field with an empty value.
Secrets (token, secret_key, security_token, password) are write-only.
Writing or deleting the config flushes the cache. A change of endpoint, region,
ca_cert, iam_endpoint, username or domain_name must carry the method's secrets.
config/rotate-root replaces the access key or password with one only Vault
knows; rotation_period does it on a schedule.`,
	}}
}

func loadConfig(ctx context.Context, s logical.Storage) (*smsConfig, error) {
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, fmt.Errorf("reading the config from storage: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	cfg := defaultConfig()
	if err := entry.DecodeJSON(cfg); err != nil {
		return nil, fmt.Errorf("decoding the stored config: %w", err)
	}
	return cfg, nil
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := loadConfig(ctx, req.Storage)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("the engine is not configured: write %sconfig", req.MountPoint))
	}
	unsettled, err := unsettledFields(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{
		"endpoint":            cfg.Endpoint,
		"region":              cfg.Region,
		"ca_cert":             cfg.CACert,
		"auth_method":         cfg.authMethod(),
		"token_set":           cfg.Token != "",
		"access_key":          cfg.AccessKey,
		"secret_key_set":      cfg.SecretKey != "",
		"security_token_set":  cfg.SecurityToken != "",
		"project_id":          cfg.ProjectID,
		"domain_id":           cfg.DomainID,
		"iam_endpoint":        cfg.IAMEndpoint,
		"username":            cfg.Username,
		"password_set":        cfg.Password != "",
		"domain_name":         cfg.DomainName,
		"cache_ttl":           int64(cfg.CacheTTL.Seconds()),
		"cache_max_entries":   cfg.CacheMaxEntries,
		"request_timeout":     int64(cfg.RequestTimeout.Seconds()),
		"max_retries":         cfg.MaxRetries,
		"max_upstream_rps":    cfg.MaxUpstreamRPS,
		"stale_if_error":      int64(cfg.StaleIfError.Seconds()),
		"password_policy":     cfg.PasswordPolicy,
		"rotation_period":     int64(cfg.RotationPeriod.Seconds()),
		"last_rotated":        rfc3339(cfg.LastRotated),
		"next_rotation":       rfc3339(cfg.rotationDue()),
		"last_rotation_error": b.rotation.lastError(),
	}}
	b.idTokenReadFields(cfg, resp.Data)
	resp.Data["rotation_backoff_until"] = rfc3339(b.rotation.backoffUntil())
	for k, v := range unsettled {
		resp.Data[k] = v
	}
	if cfg.authMethod() == authMethodPassword {
		at, client := b.passwordExpiresAt(cfg)
		resp.Data["password_expires_at"] = rfc3339(at)
		if w := b.passwordExpiryWarning(cfg, client); w != "" {
			resp.AddWarning(w)
		}
	}
	return resp, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// One writer at a time, rotations included: a rotation stores a config
	// it read before, and must not undo a write made meanwhile.
	b.configMu.Lock()
	defer b.configMu.Unlock()
	stored, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	if stored != nil {
		cfg = stored.clone()
	}

	var problems []string
	for _, f := range configFields {
		v, ok, err := d.GetOkErr(f.name)
		if err != nil {
			// The framework's conversion errors may quote the value; name the
			// field and the expected type instead.
			problems = append(problems, fmt.Sprintf("%s must be a %s", f.name, typeName(f.schema.Type)))
			continue
		}
		if ok {
			f.apply(cfg, v)
		}
	}
	if len(problems) == 0 {
		problems = cfg.validate()
	}
	if v, ok := req.Data["identity_token_audience"]; ok && v != "" && cfg.IdentityTokenAudience != "" {
		// Said first, whatever else is wrong: a write asking for plugin
		// identity tokens must learn at once whether this Vault has any.
		if _, err := b.pluginIdentityToken(ctx, cfg.IdentityTokenAudience, cfg.IdentityTokenTTL); err != nil {
			problems = append([]string{err.Error()}, problems...)
		}
	}
	if len(problems) == 0 && stored != nil {
		problems = resuppliedSecrets(stored, cfg, req.Data)
	}
	if len(problems) == 0 && cfg.authMethod() == authMethodIDToken {
		problems = b.checkIDTokenSource(cfg)
	}
	if len(problems) > 0 {
		// The stored config is untouched.
		return logical.ErrorResponse("invalid configuration: " + strings.Join(problems, "; ")), nil
	}

	cfg.Generation = newGeneration(cfg.Generation)
	if stored == nil || stored.authMethod() != cfg.authMethod() || anyWritten(req.Data, secretFields) {
		cfg.CredentialsSetAt = b.now().UTC()
	}
	if err := storeConfig(ctx, req.Storage, cfg); err != nil {
		return nil, err
	}
	b.reset()
	b.rotation.clear()
	b.logger.Info("config written", "auth_method", cfg.authMethod(), "endpoint", cfg.endpointURL())
	return nil, nil
}

// resuppliedSecrets enforces that a write which changes where credentials
// are sent, or whose login a password is used for, carries them too. Otherwise whoever may update the config could
// point the engine at a host of their choice and collect the stored secrets,
// which are write-only precisely so that an update grant does not reveal
// them.
func resuppliedSecrets(stored, next *smsConfig, written map[string]any) []string {
	moved := movedTargets(stored, next, written)
	if len(moved) == 0 {
		return nil
	}
	var missing []string
	for _, name := range next.methodSecrets() {
		if _, ok := written[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("changing %s changes where, or for whom, the engine uses its credentials: supply %s in the same write",
		strings.Join(moved, ", "), strings.Join(missing, " and "))}
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	if err := req.Storage.Delete(ctx, configStorageKey); err != nil {
		return nil, fmt.Errorf("deleting the config: %w", err)
	}
	b.reset()
	b.logger.Info("config deleted")
	if p, err := pendingOf(ctx, req.Storage, walKindPassword); err == nil && p != nil && !p.password.Applied {
		b.logger.Warn("config deleted while a password rotation is unsettled: its write-ahead log entry, which holds the " +
			"rotation's new password, is kept, and the rollback settles it once a password config for the same IAM user is written")
	}
	return nil, nil
}

func typeName(t framework.FieldType) string {
	switch t {
	case framework.TypeDurationSecond:
		return "non-negative duration such as 30s, 5m or 300"
	case framework.TypeInt:
		return "whole number"
	case framework.TypeFloat:
		return "number"
	case framework.TypeCommaStringSlice:
		return "list of strings"
	case framework.TypeBool:
		return "boolean (true or false)"
	default:
		return "string"
	}
}

func storeConfig(ctx context.Context, s logical.Storage, cfg *smsConfig) error {
	entry, err := logical.StorageEntryJSON(configStorageKey, cfg)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("saving the config: %w", err)
	}
	return nil
}

func anyWritten(data map[string]any, names []string) bool {
	for _, n := range names {
		if _, ok := data[n]; ok {
			return true
		}
	}
	return false
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
