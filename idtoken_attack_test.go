package sms

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// A config writer (update on sms/config only) chooses endpoint and
// iam_endpoint freely within SMS_ID_TOKEN_HOSTS, whose default admits every
// host under myhuaweicloud.com and myhuaweicloud.eu. Those domains hold
// hosts that any Huawei Cloud customer names and configures: OBS buckets
// (<bucket>.obs.<region>.myhuaweicloud.com) and their static websites
// (<bucket>.obs-website.<region>...). An OBS bucket's back-to-source
// (mirroring) rule forwards a GET for a missing object, with all its HTTP
// headers when set to pass them (mirrorHttpHeader.passAll), to an origin of
// the bucket owner's choice: every SMS call is such a GET, carrying
// X-Auth-Token, the IAM token the engine bought with its JWT. The default
// should name the services' hosts (iam.myhuaweicloud.com,
// iam.<region>.myhuaweicloud.com, sms.<region>.myhuaweicloud.com, and the
// .eu ones), not whole domains shared with customers.
func TestAttackIDTokenDefaultHostsAdmitCustomerNamedBuckets(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	delete(env.env, envIDTokenHosts) // the default
	huawei := map[string]any{"endpoint": "https://sms.ap-southeast-3.myhuaweicloud.com", "iam_endpoint": "https://iam.myhuaweicloud.com"}
	status, msg := env.configureIDToken(huawei)
	require.Equal(t, http.StatusNoContent, status, msg)
	for name, extra := range map[string]map[string]any{
		"endpoint":     {"endpoint": "https://attacker-bucket.obs.ap-southeast-3.myhuaweicloud.com"},
		"iam_endpoint": {"iam_endpoint": "https://attacker-bucket.obs.ap-southeast-3.myhuaweicloud.com"},
		"website":      {"endpoint": "https://attacker-bucket.obs-website.ap-southeast-3.myhuaweicloud.com"},
		"eu bucket":    {"endpoint": "https://attacker-bucket.obs.eu-west-101.myhuaweicloud.eu"},
	} {
		t.Run(name, func(t *testing.T) {
			status, msg := env.write("config", extra)
			require.Equal(t, http.StatusBadRequest, status, "a customer's bucket host was accepted as where the IAM token goes: %s", msg)
			for field := range extra {
				require.Contains(t, msg, field+": with the id_token method")
			}
		})
	}
}

// With the password and access key methods, changing ca_cert (a
// credentialTarget) needs the secrets re-supplied, because a CA of the
// writer's choice lets whoever sits on the network path to the endpoints
// read what is sent there. The id_token method stores no secret, so a
// config writer changes ca_cert freely: the hosts are bounded by the
// plugin's registration (SMS_ID_TOKEN_HOSTS), but who may impersonate them
// is not, and the JWT and the IAM token it buys go to whoever presents a
// certificate of the writer's CA for iam.myhuaweicloud.com. A CA for
// non-loopback endpoints should need the registration's consent too (an
// environment variable), or be refused with this method.
func TestAttackIDTokenConfigWriterTrustsACAOfTheirChoice(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	delete(env.env, envIDTokenHosts) // the default: Huawei Cloud's hosts
	status, msg := env.configureIDToken(map[string]any{"endpoint": "https://sms.ap-southeast-3.myhuaweicloud.com",
		"iam_endpoint": "https://iam.myhuaweicloud.com"})
	require.Equal(t, http.StatusNoContent, status, msg)

	mitm := httptest.NewTLSServer(http.NotFoundHandler())
	defer mitm.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mitm.Certificate().Raw}))
	status, msg = env.write("config", map[string]any{"iam_endpoint": "https://iam.myhuaweicloud.com", "ca_cert": ca})
	require.Equal(t, http.StatusBadRequest, status, "a config writer made the engine trust their CA for the host the JWT goes to: %s", msg)
	require.Contains(t, msg, "ca_cert: with the id_token method")

	// The registration names the hosts: a private CA is then its choice.
	env.env[envIDTokenHosts] = "iam.myhuaweicloud.com, sms.ap-southeast-3.myhuaweicloud.com"
	status, msg = env.write("config", map[string]any{"iam_endpoint": "https://iam.myhuaweicloud.com", "ca_cert": ca})
	require.Equal(t, http.StatusNoContent, status, msg)
}

// SMS_ID_TOKEN_HOSTS was checked when the config was written, never when it
// was used: once whoever registers the plugin narrows it (register again with
// a smaller -env SMS_ID_TOKEN_HOSTS, reload), a config written under the
// old registration went on sending the JWT to a host the registration no
// longer allows, until someone writes the config.
func TestAttackIDTokenNarrowedHostsAreEnforcedOnAStoredConfig(t *testing.T) {
	env := newIDTokenEnv(t, nil)
	env.mint("sub")
	// The registration allowed a private domain; .invalid never resolves.
	env.env[envIDTokenHosts] = "iam.corp.invalid,127.0.0.1"
	status, msg := env.configureIDToken(map[string]any{"iam_endpoint": "https://iam.corp.invalid", "request_timeout": "2s"})
	require.Equal(t, http.StatusNoContent, status, msg)

	// Registered again without it, and reloaded.
	delete(env.env, envIDTokenHosts)
	env.b.reset()
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadGateway, status, msg)
	require.Contains(t, msg, envIDTokenHosts, "the exchange was attempted towards a host the registration no longer allows: %s", msg)
	require.Contains(t, msg, "iam_endpoint")
}
