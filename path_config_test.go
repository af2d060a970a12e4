package sms

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestConfigWriteReadDelete(t *testing.T) {
	env := newTestEnv(t)

	_, status, msg := env.read("config")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, msg, "write sms/config")

	env.configure(nil)
	resp, status, msg := env.read("config")
	require.Equal(t, http.StatusOK, status, msg)
	require.Equal(t, env.srv.URL, resp.Data["endpoint"])
	require.Equal(t, "token", resp.Data["auth_method"])
	require.Equal(t, true, resp.Data["token_set"])
	require.NotContains(t, resp.Data, "token")
	require.EqualValues(t, 300, resp.Data["cache_ttl"])
	require.EqualValues(t, 10000, resp.Data["cache_max_entries"])
	require.EqualValues(t, 10, resp.Data["request_timeout"])
	require.EqualValues(t, 2, resp.Data["max_retries"])
	require.EqualValues(t, 0, resp.Data["max_upstream_rps"])
	require.EqualValues(t, 0, resp.Data["stale_if_error"])
	require.Equal(t, "", resp.Data["ca_cert"])
	assertNoSecrets(t, fmt.Sprint(resp.Data))

	status, msg = env.del("config")
	require.Equal(t, http.StatusNoContent, status, msg)
	_, status, _ = env.read("config")
	require.Equal(t, http.StatusNotFound, status)

	// Without config a read is a 400 that says what to do, and SMS is not called.
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, msg, "write sms/config")
	require.Zero(t, env.fake.Stats().Requests)
}

func TestConfigExistenceCheckSplitsCreateFromUpdate(t *testing.T) {
	env := newTestEnv(t)
	req := &logical.Request{Operation: logical.CreateOperation, Path: "config", Storage: env.storage}
	_, exists, err := env.b.HandleExistenceCheck(context.Background(), req)
	require.NoError(t, err)
	require.False(t, exists)

	env.configure(nil)
	_, exists, err = env.b.HandleExistenceCheck(context.Background(), req)
	require.NoError(t, err)
	require.True(t, exists)
}

func TestConfigUpdateChangesOnlyNamedFields(t *testing.T) {
	env := newTestEnv(t)
	env.configure(map[string]any{"cache_ttl": "2m", "request_timeout": "20s"})

	status, msg := env.write("config", map[string]any{"cache_max_entries": 5})
	require.Equal(t, http.StatusNoContent, status, msg)

	resp, _, _ := env.read("config")
	require.Equal(t, env.srv.URL, resp.Data["endpoint"])
	require.Equal(t, true, resp.Data["token_set"])
	require.EqualValues(t, 120, resp.Data["cache_ttl"])
	require.EqualValues(t, 20, resp.Data["request_timeout"])
	require.EqualValues(t, 5, resp.Data["cache_max_entries"])

	// The token still works: it was kept, not cleared.
	_, status, msg = env.readPassphrase(testTask)
	require.Equal(t, http.StatusOK, status, msg)
}

func TestConfigAcceptsLoopbackHTTPAndRegion(t *testing.T) {
	for _, endpoint := range []string{
		"http://127.0.0.1:8080", "http://127.3.2.1", "http://localhost:9", "http://[::1]:8443",
		"https://sms.ap-southeast-3.myhuaweicloud.com", "https://sms.example.internal:8443/prefix/",
	} {
		t.Run(endpoint, func(t *testing.T) {
			env := newTestEnv(t)
			status, msg := env.write("config", map[string]any{"endpoint": endpoint, "token": testToken})
			require.Equal(t, http.StatusNoContent, status, msg)
		})
	}

	env := newTestEnv(t)
	status, msg := env.write("config", map[string]any{"region": "ap-southeast-3", "token": testToken})
	require.Equal(t, http.StatusNoContent, status, msg)
	conn, err := env.b.connection(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, "https://sms.ap-southeast-3.myhuaweicloud.com", conn.cfg.endpointURL())
}

func TestConfigRejectsInvalidValuesAndKeepsTheStoredOne(t *testing.T) {
	cases := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"not a URL", map[string]any{"endpoint": "sms.example.com"}, "endpoint"},
		{"remote http", map[string]any{"endpoint": "http://sms.ap-southeast-3.myhuaweicloud.com"}, "endpoint"},
		{"http to a private address", map[string]any{"endpoint": "http://10.0.0.8"}, "endpoint"},
		{"other scheme", map[string]any{"endpoint": "ftp://127.0.0.1"}, "endpoint"},
		{"user info", map[string]any{"endpoint": "https://me:pw@sms.example.com"}, "endpoint"},
		{"query", map[string]any{"endpoint": "https://sms.example.com/?a=b"}, "endpoint"},
		{"fragment", map[string]any{"endpoint": "https://sms.example.com/#x"}, "endpoint"},
		{"endpoint and region", map[string]any{"region": "ap-southeast-3"}, "region"},
		{"neither endpoint nor region", map[string]any{"endpoint": ""}, "endpoint or region"},
		{"bad region", map[string]any{"endpoint": "", "region": "AP South!"}, "region"},
		{"bad iam_endpoint", map[string]any{"iam_endpoint": "http://iam.example.com"}, "iam_endpoint"},
		{"negative cache_ttl", map[string]any{"cache_ttl": "-5s"}, "cache_ttl"},
		{"absurd cache_ttl", map[string]any{"cache_ttl": "48h"}, "cache_ttl"},
		{"overflowing cache_ttl", map[string]any{"cache_ttl": "99999999999999999"}, "cache_ttl"},
		{"cache_ttl not a duration", map[string]any{"cache_ttl": "soon"}, "cache_ttl"},
		{"zero cache_max_entries", map[string]any{"cache_max_entries": 0}, "cache_max_entries"},
		{"huge cache_max_entries", map[string]any{"cache_max_entries": 100000000}, "cache_max_entries"},
		{"zero request_timeout", map[string]any{"request_timeout": 0}, "request_timeout"},
		{"absurd request_timeout", map[string]any{"request_timeout": "1h"}, "request_timeout"},
		{"ca_cert not PEM", map[string]any{"ca_cert": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}, "ca_cert"},
		{"token too long", map[string]any{"token": strings.Repeat("t", 16385)}, "token"},
		{"token with a newline", map[string]any{"token": "abc\ndef-header-injection"}, "token"},
		{"token as a list", map[string]any{"token": []any{testToken}}, "token"},
		{"password as a map", map[string]any{"password": map[string]any{"p": testPassword}}, "password"},
		{"negative max_retries", map[string]any{"max_retries": -1}, "max_retries"},
		{"too many max_retries", map[string]any{"max_retries": 50}, "max_retries"},
		{"negative max_upstream_rps", map[string]any{"max_upstream_rps": -1}, "max_upstream_rps"},
		{"NaN max_upstream_rps", map[string]any{"max_upstream_rps": "NaN"}, "max_upstream_rps"},
		{"absurd stale_if_error", map[string]any{"stale_if_error": "30d"}, "stale_if_error"},
		{"no credentials", map[string]any{"token": ""}, "no credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.configure(map[string]any{"cache_ttl": "2m"})
			before, _, _ := env.read("config")

			status, msg := env.write("config", tc.data)
			require.Equal(t, http.StatusBadRequest, status, msg)
			require.Contains(t, msg, tc.field)
			assertNoSecrets(t, msg)

			after, _, _ := env.read("config")
			require.Equal(t, before.Data, after.Data, "a rejected write must not change the stored config")
			_, status, msg = env.readPassphrase(testTask)
			require.Equal(t, http.StatusOK, status, "the engine must keep working: %s", msg)
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	env := newTestEnv(t)
	status, msg := env.write("config", map[string]any{
		"endpoint": "http://sms.example.com", "token": testToken, "cache_max_entries": 0, "request_timeout": "1h",
	})
	require.Equal(t, http.StatusBadRequest, status)
	for _, field := range []string{"endpoint", "cache_max_entries", "request_timeout"} {
		require.Contains(t, msg, field)
	}
}

func TestConfigCACertIsValidatedAndReturned(t *testing.T) {
	env := newTestEnv(t)
	pemCert := testCACertPEM(t)
	env.configure(map[string]any{"ca_cert": pemCert})
	resp, _, _ := env.read("config")
	require.Equal(t, strings.TrimSpace(pemCert), resp.Data["ca_cert"])
}

func TestConfigSecretsAreWriteOnly(t *testing.T) {
	writes := []map[string]any{
		{"token": testToken},
		{"token": "", "access_key": testAccessKey, "secret_key": testSecretKey, "security_token": testSecurityTok, "project_id": "p1"},
		{"access_key": "", "secret_key": "", "security_token": "", "project_id": "",
			"username": testUser, "password": testPassword, "domain_name": testDomain},
	}
	env := newTestEnv(t)
	env.configure(nil)
	for _, w := range writes {
		status, msg := env.write("config", w)
		require.Equal(t, http.StatusNoContent, status, msg)
		resp, status, msg := env.read("config")
		require.Equal(t, http.StatusOK, status, msg)
		assertNoSecrets(t, fmt.Sprintf("%v", resp.Data))
		for _, name := range secretFields {
			require.NotContains(t, resp.Data, name)
			require.Contains(t, resp.Data, name+"_set")
		}
	}

	// The stored struct hides its secrets from fmt, whatever the verb.
	cfg, err := loadConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, secret(testPassword), cfg.Password)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		assertNoSecrets(t, fmt.Sprintf(verb, cfg))
		assertNoSecrets(t, fmt.Sprintf(verb, *cfg))
	}
}

func TestConfigWriteAndDeleteFlushTheCache(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.readPassphrase(testTask)
	env.readPassphrase(testTask)
	require.EqualValues(t, 1, env.fake.Stats().Requests)

	env.configure(map[string]any{"cache_ttl": "10m"})
	env.readPassphrase(testTask)
	require.EqualValues(t, 2, env.fake.Stats().Requests, "a config write must flush the cache")

	env.del("config")
	env.configure(nil)
	env.readPassphrase(testTask)
	require.EqualValues(t, 3, env.fake.Stats().Requests, "a config delete must flush the cache")
}

func TestConfigAuthMethods(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)

	t.Run("mixing methods is rejected naming the fields", func(t *testing.T) {
		status, msg := env.write("config", map[string]any{"access_key": testAccessKey, "secret_key": testSecretKey})
		require.Equal(t, http.StatusBadRequest, status)
		for _, f := range []string{"token", "access_key", "secret_key"} {
			require.Contains(t, msg, f)
		}
		status, msg = env.write("config", map[string]any{"username": testUser})
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, msg, "username")
	})

	t.Run("half-filled methods are rejected", func(t *testing.T) {
		for _, data := range []map[string]any{
			{"token": "", "access_key": testAccessKey},
			{"token": "", "secret_key": testSecretKey},
			{"token": "", "security_token": testSecurityTok},
			{"token": "", "username": testUser, "password": testPassword},
			{"token": "", "domain_name": testDomain},
		} {
			status, msg := env.write("config", data)
			require.Equal(t, http.StatusBadRequest, status, "%v", data)
			for f := range data {
				if f != "token" {
					require.Contains(t, msg, f)
				}
			}
			assertNoSecrets(t, msg)
		}
		resp, _, _ := env.read("config")
		require.Equal(t, "token", resp.Data["auth_method"], "rejected writes must not change the method")
	})

	t.Run("switching in one write by clearing the old fields", func(t *testing.T) {
		status, msg := env.write("config", map[string]any{"token": "", "access_key": testAccessKey, "secret_key": testSecretKey})
		require.Equal(t, http.StatusNoContent, status, msg)
		resp, _, _ := env.read("config")
		require.Equal(t, "access_key", resp.Data["auth_method"])
		require.Equal(t, testAccessKey, resp.Data["access_key"])
		require.Equal(t, true, resp.Data["secret_key_set"])
		require.Equal(t, false, resp.Data["token_set"])

		status, msg = env.write("config", map[string]any{"access_key": "", "secret_key": "",
			"username": testUser, "password": testPassword, "domain_name": testDomain})
		require.Equal(t, http.StatusNoContent, status, msg)
		resp, _, _ = env.read("config")
		require.Equal(t, "password", resp.Data["auth_method"])
		require.Equal(t, true, resp.Data["password_set"])
		require.Equal(t, testUser, resp.Data["username"])
		require.Equal(t, "https://iam.myhuaweicloud.com", resp.Data["iam_endpoint"])
	})

	t.Run("switching after a delete", func(t *testing.T) {
		env.del("config")
		status, msg := env.write("config", map[string]any{"endpoint": env.srv.URL, "access_key": testAccessKey, "secret_key": testSecretKey})
		require.Equal(t, http.StatusNoContent, status, msg)
	})
}

// testCACertPEM returns a self-signed CA certificate.
func testCACertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
