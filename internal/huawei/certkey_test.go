package huawei

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testCertAndKey(t *testing.T, notAfter time.Time) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// body is the base64 lines of a PEM block.
func body(block string) string {
	lines := strings.Split(strings.TrimSpace(block), "\n")
	return strings.Join(lines[1:len(lines)-1], "\n")
}

func TestCheckPEM(t *testing.T) {
	cert, key := testCertAndKey(t, time.Now().Add(time.Hour))
	block := func(typ string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: []byte("opaque")}))
	}
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: []byte("x")}))
	for _, tc := range []struct {
		name  string
		value string
		key   bool
		ok    bool
	}{
		{"one certificate", cert, false, true},
		{"a chain", cert + cert, false, true},
		{"surrounding white space", "\n  " + cert + "\n\n", false, true},
		{"a key where a certificate belongs", key, false, false},
		{"a certificate and a key", cert + key, false, false},
		{"text before", "issuer: x\n" + cert, false, false},
		{"text after", cert + "trailing", false, false},
		{"not PEM", "MIIB...", false, false},
		{"a truncated block", cert[:len(cert)/2], false, false},
		{"PKCS#8 key", key, true, true},
		{"PKCS#8 encrypted key", block("ENCRYPTED PRIVATE KEY"), true, true},
		{"legacy encrypted key", encrypted, true, true},
		{"EC key", block("EC PRIVATE KEY"), true, true},
		{"two keys", key + key, true, false},
		{"a certificate where a key belongs", cert, true, false},
		{"a public key", block("PUBLIC KEY"), true, false},
		{"only white space", "  \n", true, false},
		// pem.Decode skips a block it cannot read and returns the next one:
		// whatever rides in the broken block must not pass with it.
		{"a key in a broken block before a certificate", "-----BEGIN PRIVATE KEY-----\n" + body(key) + "\n-----END CERTIFICATE-----\n" + cert, false, false},
		{"text after a bare BEGIN", "-----BEGIN x\nsome text\n" + cert, false, false},
		{"a broken block between certificates", cert + "-----BEGIN x\nsome text\n" + cert, false, false},
		{"a broken key block before a key", "-----BEGIN RSA PRIVATE KEY-----\n" + body(key) + "\n-----END PRIVATE KEY-----\n" + key, true, false},
		{"an empty BEGIN before a key", "-----BEGIN \n" + key, true, false},
		{"a certificate with headers", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
			Headers: map[string]string{"Comment": "opaque"}, Bytes: []byte("x")})), false, false},
	} {
		problem := checkPEM(tc.value, tc.key)
		require.Equal(t, tc.ok, problem == "", "%s: %s", tc.name, problem)
		require.NotContains(t, problem, "opaque")
	}
}

func TestNotAfterOfEveryCertificateThatParses(t *testing.T) {
	early, _ := testCertAndKey(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	late, _ := testCertAndKey(t, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	got := notAfters(late + early + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})))
	require.Len(t, got, 3)
	require.True(t, got[0].After(got[1]))
	require.True(t, strings.HasPrefix(got[1].Format(time.RFC3339), "2030-01-01"))
	require.True(t, got[2].IsZero(), "a block that does not parse has no NotAfter")
}

func certKeyAnswer(t *testing.T, answer string) (*CertKey, error) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{Endpoint: srv.URL, Method: MethodToken, Token: "certkey-test-token-0a1b2c", Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.CertKey(context.Background(), "t1", false)
}

func TestCertKeyAnswerWithoutAnyFieldIsRefused(t *testing.T) {
	for _, answer := range []string{`{}`, `null`, `{"cert":null,"private_key":""}`,
		`{"error_code":"SMS.0211","error_msg":"failed to send certificate decryption key"}`} {
		_, err := certKeyAnswer(t, answer)
		var e *Error
		require.ErrorAs(t, err, &e, answer)
		require.Equal(t, KindBadResponse, e.Kind, answer)
		require.Contains(t, err.Error(), "without any certificate or key", answer)
	}
}

func TestCertNotAfterIsTheFirstBlocksOnly(t *testing.T) {
	chain, _ := testCertAndKey(t, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC))
	leaf, _ := testCertAndKey(t, time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC))
	junk := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }

	ck, err := certKeyAnswer(t, `{"cert":`+q(junk+chain)+`}`)
	require.NoError(t, err)
	require.True(t, ck.CertNotAfter.IsZero(), "the certificate itself does not parse: no cert_not_after")
	require.Equal(t, 2040, ck.EarliestNotAfter.Year(), "the chain still bounds the cache")

	ck, err = certKeyAnswer(t, `{"cert":`+q(chain+leaf)+`,"ca":`+q(leaf)+`}`)
	require.NoError(t, err)
	require.Equal(t, 2040, ck.CertNotAfter.Year())
	require.Equal(t, 2035, ck.EarliestNotAfter.Year())
}

// FuzzCheckPEM: whatever checkPEM accepts is blocks and white space only:
// every BEGIN line in it starts a block that decodes, of the right type.
func FuzzCheckPEM(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false)
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", true)
	f.Add("-----BEGIN \n-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----", true)
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false)
	f.Fuzz(func(t *testing.T, v string, key bool) {
		if checkPEM(v, key) != "" {
			return
		}
		blocks := 0
		rest := []byte(v)
		for {
			block, next := pem.Decode(rest)
			if block == nil {
				break
			}
			if key != privateKeyTypes[block.Type] || !key && block.Type != "CERTIFICATE" {
				t.Fatalf("accepted a %q block in a key=%v field", block.Type, key)
			}
			blocks++
			rest = next
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("accepted text after the last block")
		}
		if n := strings.Count(v, "-----BEGIN"); n != blocks {
			t.Fatalf("accepted %d BEGIN lines for %d blocks", n, blocks)
		}
		if key && blocks != 1 {
			t.Fatalf("accepted %d key blocks", blocks)
		}
	})
}
