package huawei

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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
	require.Len(t, got, 2, "a block that does not parse has no NotAfter")
	require.True(t, got[0].After(got[1]))
	require.True(t, strings.HasPrefix(got[1].Format(time.RFC3339), "2030-01-01"))
}
