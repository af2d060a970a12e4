package smsfake

import (
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// signer makes ID tokens with one key, as an OIDC issuer would.
type signer struct{ *Issuer }

func newRSASigner(t *testing.T, kid string) *signer {
	s, err := NewIssuer(kid, "RS256")
	require.NoError(t, err)
	return &signer{s}
}

func newECSigner(t *testing.T, kid string) *signer {
	s, err := NewIssuer(kid, "ES256")
	require.NoError(t, err)
	return &signer{s}
}

func b64(b []byte) string { return b64url(b) }

func jwksOf(signers ...*signer) json.RawMessage {
	var issuers []*Issuer
	for _, s := range signers {
		issuers = append(issuers, s.Issuer)
	}
	return JWKS(issuers...)
}

func (s *signer) sign(t *testing.T, claims map[string]any) string {
	jwt, err := s.Sign(claims)
	require.NoError(t, err)
	return jwt
}

const (
	issuer   = "https://oidc.example.test"
	clientID = "sms-vault"
)

func (e *keyEnv) claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": issuer, "aud": clientID, "sub": "system:serviceaccount:vault:vault",
		"exp": e.clock.Now().Add(time.Hour).Unix(), "iat": e.clock.Now().Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// exchange sends an ID token to the id-token call.
func (e *keyEnv) exchange(idp, jwt string) (int, string, map[string]any) {
	e.t.Helper()
	body := `{"auth":{"id_token":{"id":"` + jwt + `"},"scope":{"domain":{"name":"d"}}}}`
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+idTokenPath, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	if idp != "" {
		req.Header.Set("X-Idp-Id", idp)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header.Get("X-Subject-Token"), out
}

func fedEnv(t *testing.T, idpPerms *Permissions, signers ...*signer) *keyEnv {
	return newKeyEnv(t, func(o *Options) {
		o.IdentityProviders = []IdentityProvider{{ID: "k8s", Domain: "d", Issuer: issuer, ClientIDs: []string{"other", clientID},
			JWKS: jwksOf(signers...), Permissions: idpPerms}}
	})
}

func TestIDTokensSignedWithRS256AndES256AreExchangedForAFederatedToken(t *testing.T) {
	rs, es := newRSASigner(t, "rsa-1"), newECSigner(t, "ec-1")
	e := fedEnv(t, nil, rs, es)
	for _, s := range []*signer{rs, es} {
		status, tok, body := e.exchange("k8s", s.sign(t, e.claims(map[string]any{"aud": []string{"x", clientID}})))
		require.Equal(t, http.StatusCreated, status, "%v", body["error"])
		require.NotEmpty(t, tok)
		token := body["token"].(map[string]any)
		require.Equal(t, []any{"mapped"}, token["methods"])
		user := token["user"].(map[string]any)
		require.Equal(t, "k8s", user["OS-FEDERATION"].(map[string]any)["identity_provider"].(map[string]any)["id"])

		status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", withToken(tok))
		require.Equal(t, http.StatusOK, status)
	}
	calls := e.s.Calls()
	require.Len(t, calls, 2)
	require.Equal(t, "federated", calls[0].Kind)
	require.Equal(t, "fed-system_serviceaccount_vault_vault", calls[0].Name)
}

func TestIDTokensIAMMustRefuse(t *testing.T) {
	good, other := newRSASigner(t, "rsa-1"), newRSASigner(t, "rsa-2")
	impostor := &signer{&Issuer{kid: "rsa-1", rsa: other.rsa}} // the right kid, another key
	e := newKeyEnv(t, func(o *Options) {
		o.IdentityProviders = []IdentityProvider{{ID: "k8s", Domain: "d", Issuer: issuer, ClientIDs: []string{clientID},
			JWKS: jwksOf(good), Subjects: []string{"system:serviceaccount:vault:vault"}}}
	})
	now := e.clock.Now()
	cases := []struct {
		name, idp, jwt string
		status         int
	}{
		{"unknown identity provider", "nope", good.sign(t, e.claims(nil)), 404},
		{"no X-Idp-Id", "", good.sign(t, e.claims(nil)), 400},
		{"not a JWS", "k8s", "not-a-jwt", 400},
		{"payload not JSON", "k8s", b64([]byte(`{"alg":"RS256","kid":"rsa-1"}`)) + "." + b64([]byte("x")) + "." + b64([]byte("y")), 401},
		{"signed by another key", "k8s", impostor.sign(t, e.claims(nil)), 401},
		{"unknown kid", "k8s", other.sign(t, e.claims(nil)), 401},
		{"expired", "k8s", good.sign(t, e.claims(map[string]any{"exp": now.Add(-time.Second).Unix()})), 401},
		{"no exp", "k8s", good.sign(t, e.claims(map[string]any{"exp": nil})), 401},
		{"not yet valid", "k8s", good.sign(t, e.claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), 401},
		{"wrong audience", "k8s", good.sign(t, e.claims(map[string]any{"aud": "someone-else"})), 401},
		{"wrong issuer", "k8s", good.sign(t, e.claims(map[string]any{"iss": "https://evil.test"})), 401},
		{"no mapping rule matches", "k8s", good.sign(t, e.claims(map[string]any{"sub": "intruder"})), 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, tok, body := e.exchange(c.idp, c.jwt)
			require.Equal(t, c.status, status, "%v", body["error"])
			require.Empty(t, tok)
			iamMessage(t, c.status, body)
		})
	}
	// Tampering with a good token's claims breaks its signature.
	jwt := good.sign(t, e.claims(nil))
	parts := strings.Split(jwt, ".")
	parts[1] = b64([]byte(`{"iss":"` + issuer + `","aud":"` + clientID + `","sub":"system:serviceaccount:vault:vault","exp":9999999999}`))
	status, _, _ := e.exchange("k8s", strings.Join(parts, "."))
	require.Equal(t, 401, status)
	status, _, _ = e.exchange("k8s", jwt)
	require.Equal(t, 201, status)
}

func assumeBody(agency, domainField, domain string, seconds int, session string) string {
	return `{"auth":{"identity":{"methods":["assume_role"],"assume_role":{"agency_name":"` + agency + `","` + domainField + `":"` + domain +
		`","duration_seconds":` + itoa(seconds) + `,"session_user":{"name":"` + session + `"}}}}}`
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// agencyEnv: account d (alice may only assume agencies; bob has no rights
// at all), account "team-a" with agency sms-a trusting d, allowed to read
// passphrases of enterprise project ep-a only; tasks t1 (ep-a) and t2 (ep-b).
func agencyEnv(t *testing.T) *keyEnv {
	e := newKeyEnv(t, func(o *Options) {
		o.Tasks = map[string]string{"t1": "p1", "t2": "p2"}
		o.TaskMeta = map[string]TaskMeta{"t1": {Name: "a-1", EnterpriseProjectID: "ep-a", State: "READY"}, "t2": {Name: "b-1", EnterpriseProjectID: "ep-b", State: "READY"}}
		o.UserPermissions = map[string]*Permissions{"d/alice": {AgentOperator: true}, "d/bob": {}}
		o.Agencies = []Agency{{Name: "sms-a", Domain: "team-a", Trusted: []string{"d"}, MaxDuration: Duration(12 * time.Hour),
			Permissions: &Permissions{Actions: []string{"sms:server:get*", "sms:server:listTask"}, EnterpriseProjects: []string{"ep-a"}}}}
	})
	return e
}

func (e *keyEnv) assume(a auth, body string) (int, map[string]any) {
	e.t.Helper()
	return e.call(http.MethodPost, securityTokensPath, body, a)
}

func TestAgencyCredentialsActUnderTheAgencysPolicyAndSessionName(t *testing.T) {
	e := agencyEnv(t)
	alice := withToken(e.token("alice", "Old-pass1"))

	// alice's own rights hold no SMS action: the least-privilege root.
	status, body := e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", alice)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, "SMS.9004", body["error_code"])
	require.Contains(t, body["error_msg"], "sms:server:getTaskPassphrase")

	for _, domain := range [][2]string{{"domain_name", "team-a"}, {"domain_id", DomainID("team-a")}} {
		status, body = e.assume(alice, assumeBody("sms-a", domain[0], domain[1], 3600, "vault-role-team-a"))
		require.Equal(t, http.StatusCreated, status, "%v", body["error"])
	}
	cred := body["credential"].(map[string]any)
	expires, err := time.Parse(createTimeFormat, cred["expires_at"].(string))
	require.NoError(t, err)
	require.Equal(t, e.clock.Now().Add(time.Hour).UTC().Truncate(time.Microsecond), expires)
	temp := e.signedTemp(cred["access"].(string), cred["secret"].(string), cred["securitytoken"].(string))

	status, body = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", temp)
	require.Equal(t, http.StatusOK, status, "%v", body["error_msg"])
	require.Equal(t, "p1", body["passphrase"])
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/certkey", "", temp)
	require.Equal(t, http.StatusOK, status)
	// Another enterprise project, and a task that does not exist: 403.
	for _, path := range []string{"/v3/tasks/t2/passphrase", "/v3/tasks/t2", "/v3/tasks/nope"} {
		status, body = e.call(http.MethodGet, path, "", temp)
		require.Equal(t, http.StatusForbidden, status, path)
		require.Equal(t, "SMS.9004", body["error_code"])
	}
	// ListTasks shows the agency's projects only.
	status, body = e.call(http.MethodGet, "/v3/tasks", "", temp)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 1, body["count"])

	// Without the security token, or with another, the signature is refused.
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", e.signed(cred["access"].(string), cred["secret"].(string)))
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", e.signedTemp(cred["access"].(string), cred["secret"].(string), "forged"))
	require.Equal(t, http.StatusUnauthorized, status)

	// The trace names the agency and the session for each call.
	var agencyCalls int
	for _, c := range e.s.Calls() {
		if c.Kind == "agency" {
			agencyCalls++
			require.Equal(t, "team-a", c.Domain)
			require.Equal(t, "sms-a", c.Name)
			require.Equal(t, "vault-role-team-a", c.Session)
		}
	}
	require.Equal(t, 6, agencyCalls)

	// At expires_at the credentials stop working.
	e.clock.Add(time.Hour)
	status, body = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", temp)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body["error_msg"], "expired")
}

func TestAssumeRoleIsCheckedAsIAMChecksIt(t *testing.T) {
	e := agencyEnv(t)
	require.NoError(t, e.s.SetAgency(Agency{Name: "sms-c", Domain: "team-c", Trusted: []string{"elsewhere"}}))
	alice := withToken(e.token("alice", "Old-pass1"))
	bob := withToken(e.token("bob", "Bob-pass1"))
	cases := []struct {
		name   string
		a      auth
		body   string
		status int
	}{
		{"no Agent Operator right", bob, assumeBody("sms-a", "domain_name", "team-a", 3600, "vault-x"), 403},
		{"agency does not trust the account", alice, assumeBody("sms-c", "domain_name", "team-c", 3600, "vault-x"), 403},
		{"unknown agency", alice, assumeBody("nope", "domain_name", "team-a", 3600, "vault-x"), 404},
		{"agency in another account", alice, assumeBody("sms-a", "domain_name", "team-c", 3600, "vault-x"), 404},
		{"too short", alice, assumeBody("sms-a", "domain_name", "team-a", 899, "vault-x"), 400},
		{"too long for IAM", alice, assumeBody("sms-a", "domain_name", "team-a", 86401, "vault-x"), 400},
		{"longer than the agency allows", alice, assumeBody("sms-a", "domain_name", "team-a", 13*3600, "vault-x"), 400},
		{"session name too short", alice, assumeBody("sms-a", "domain_name", "team-a", 3600, "vx"), 400},
		{"session name starts with a digit", alice, assumeBody("sms-a", "domain_name", "team-a", 3600, "1vault"), 400},
		{"session name with a dot", alice, assumeBody("sms-a", "domain_name", "team-a", 3600, "vault.x"), 400},
		{"session name too long", alice, assumeBody("sms-a", "domain_name", "team-a", 3600, "v"+strings.Repeat("x", 64)), 400},
		{"both domain fields", alice, `{"auth":{"identity":{"methods":["assume_role"],"assume_role":{"agency_name":"sms-a","domain_name":"team-a","domain_id":"x"}}}}`, 400},
		{"no credential", nil, assumeBody("sms-a", "domain_name", "team-a", 3600, "vault-x"), 401},
		{"unknown token", withToken("nope"), assumeBody("sms-a", "domain_name", "team-a", 3600, "vault-x"), 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.assume(c.a, c.body)
			require.Equal(t, c.status, status, "%v", body["error"])
			iamMessage(t, c.status, body)
		})
	}
	// The longest names and durations that are allowed.
	status, body := e.assume(alice, assumeBody("sms-a", "domain_name", "team-a", 12*3600, "v"+strings.Repeat("x", 63)))
	require.Equal(t, http.StatusCreated, status, "%v", body["error"])

	// Agency credentials cannot assume agencies in turn.
	cred := body["credential"].(map[string]any)
	temp := e.signedTemp(cred["access"].(string), cred["secret"].(string), cred["securitytoken"].(string))
	status, _ = e.assume(temp, assumeBody("sms-a", "domain_name", "team-a", 3600, "vault-x"))
	require.Equal(t, http.StatusForbidden, status)

	// A deleted agency's credentials may do nothing more.
	e.s.DeleteAgency("team-a", "sms-a")
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", temp)
	require.Equal(t, http.StatusForbidden, status)
}

func TestFederatedUserAssumesAnAgency(t *testing.T) {
	s := newECSigner(t, "ec-1")
	e := agencyEnv(t)
	require.NoError(t, e.s.SetIdentityProvider(IdentityProvider{ID: "k8s", Domain: "d", Issuer: issuer, ClientIDs: []string{clientID},
		JWKS: jwksOf(s), Permissions: &Permissions{AgentOperator: true}}))
	status, tok, body := e.exchange("k8s", s.sign(t, e.claims(nil)))
	require.Equal(t, http.StatusCreated, status, "%v", body["error"])
	fed := withToken(tok)

	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", fed)
	require.Equal(t, http.StatusForbidden, status, "the federated user has no SMS right of its own")
	status, body = e.assume(fed, assumeBody("sms-a", "domain_name", "team-a", 900, "vault-team-a"))
	require.Equal(t, http.StatusCreated, status, "%v", body["error"])
	cred := body["credential"].(map[string]any)
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", e.signedTemp(cred["access"].(string), cred["secret"].(string), cred["securitytoken"].(string)))
	require.Equal(t, http.StatusOK, status)
}

func TestControlAPISetsIdentityProvidersAgenciesAndPolicies(t *testing.T) {
	e := newKeyEnv(t, nil)
	s := newRSASigner(t, "rsa-1")
	idp, _ := json.Marshal(IdentityProvider{Domain: "d", Issuer: issuer, ClientIDs: []string{clientID}, JWKS: jwksOf(s)})
	status, _ := e.call(http.MethodPut, "/__fake/identity-providers/k8s", string(idp), nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _ = e.call(http.MethodPut, "/__fake/identity-providers/bad", `{"domain":"d","issuer":"i","client_ids":["c"],"jwks":{"keys":[]}}`, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = e.call(http.MethodPut, "/__fake/agencies/team-a/sms-a", `{"trusted":["d"],"permissions":{"actions":["sms:*:*"]}}`, nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _ = e.call(http.MethodPut, "/__fake/permissions/d/alice", `{"agent_operator":true}`, nil)
	require.Equal(t, http.StatusNoContent, status)

	status, tok, _ := e.exchange("k8s", s.sign(t, e.claims(nil)))
	require.Equal(t, http.StatusCreated, status)
	alice := withToken(e.token("alice", "Old-pass1"))
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", alice)
	require.Equal(t, http.StatusForbidden, status)
	status, body := e.assume(alice, assumeBody("sms-a", "domain_name", "team-a", 900, "vault-team-a"))
	require.Equal(t, http.StatusCreated, status)
	cred := body["credential"].(map[string]any)
	temp := e.signedTemp(cred["access"].(string), cred["secret"].(string), cred["securitytoken"].(string))
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", temp)
	require.Equal(t, http.StatusOK, status)
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", withToken(tok))
	require.Equal(t, http.StatusOK, status)

	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/__fake/calls", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var calls []Call
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&calls))
	resp.Body.Close()
	require.Len(t, calls, 3)
	require.Equal(t, []int{403, 200, 200}, []int{calls[0].Status, calls[1].Status, calls[2].Status})
	require.Equal(t, "vault-team-a", calls[1].Session)

	status, _ = e.call(http.MethodPost, "/__fake/expire-temporary-keys", "", nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _ = e.call(http.MethodGet, "/v3/tasks/t1/passphrase", "", temp)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = e.call(http.MethodDelete, "/__fake/calls", "", nil)
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, e.s.Calls())
}
