package huawei

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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
	block := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	opaque := func(typ string) string { return block(typ, []byte("opaque")) }
	der := func(v any) []byte {
		b, err := asn1.Marshal(v)
		require.NoError(t, err)
		return b
	}
	keyDER, _ := pem.Decode([]byte(key))
	certDER, _ := pem.Decode([]byte(cert))
	legacy := func(headers map[string]string, ciphertext []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: headers, Bytes: ciphertext}))
	}
	encryptedHeaders := map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}
	encrypted := legacy(encryptedHeaders, make([]byte, 32))
	type algorithm struct{ OID asn1.ObjectIdentifier }
	// Shapes of keys the engine does not need to understand: an encrypted
	// PKCS#8 key, and PKCS#1 and SEC 1 keys of any algorithm or curve.
	encryptedPKCS8 := der(struct {
		Alg algorithm
		Key []byte
	}{algorithm{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}}, []byte("ciphertext")})
	rsaKey := der(struct{ Version, N, E, D, P, Q, DP, DQ, QInv int }{0, 12345, 65537, 3, 5, 7, 11, 13, 17})
	rsaPublicKey := der(struct{ N, E int }{12345, 65537})
	multiPrimeRSAKey := der(struct {
		Version, N, E, D, P, Q, DP, DQ, QInv int
		Others                               []struct{ R, D, T int }
	}{1, 12345, 65537, 3, 5, 7, 11, 13, 17, []struct{ R, D, T int }{{19, 23, 29}}})
	ecKey := der(struct {
		Version int
		Key     []byte
	}{1, []byte("k")})
	unknownPKCS8 := der(struct {
		Version int
		Alg     algorithm
		Key     []byte
	}{0, algorithm{asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}}, []byte("k")}) // an SM2 key: crypto/x509 knows no such curve
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
		// Issue 17, defect 6: well-formed PEM of the right type is not
		// enough; every block must be a certificate.
		{"a key's bytes labelled CERTIFICATE", block("CERTIFICATE", keyDER.Bytes), false, false},
		{"a key's bytes labelled CERTIFICATE after a certificate", cert + block("CERTIFICATE", keyDER.Bytes), false, false},
		{"opaque bytes labelled CERTIFICATE", opaque("CERTIFICATE"), false, false},
		{"a certificate with trailing bytes", block("CERTIFICATE", append(append([]byte(nil), certDER.Bytes...), 0)), false, false},
		{"PKCS#8 key", key, true, true},
		{"PKCS#8 key of an algorithm crypto/x509 does not know", block("PRIVATE KEY", unknownPKCS8), true, true},
		{"PKCS#8 encrypted key", block("ENCRYPTED PRIVATE KEY", encryptedPKCS8), true, true},
		{"legacy encrypted key", encrypted, true, true},
		{"PKCS#1 key", block("RSA PRIVATE KEY", rsaKey), true, true},
		{"SEC 1 key", block("EC PRIVATE KEY", ecKey), true, true},
		{"multi-prime PKCS#1 key", block("RSA PRIVATE KEY", multiPrimeRSAKey), true, true},
		// Review of issue 17: the shapes include the version, and PKCS#1
		// all nine integers, so that a public key is not taken for a
		// private one.
		{"a PKCS#1 public key labelled RSA PRIVATE KEY", block("RSA PRIVATE KEY", rsaPublicKey), true, false},
		{"a PKCS#1 key of version 2", block("RSA PRIVATE KEY", der(struct{ Version, N, E, D, P, Q, DP, DQ, QInv int }{2, 12345, 65537, 3, 5, 7, 11, 13, 17})), true, false},
		{"a SEC 1 key of version 0", block("EC PRIVATE KEY", der(struct {
			Version int
			Key     []byte
		}{0, []byte("k")})), true, false},
		{"a PKCS#8 key of version 2", block("PRIVATE KEY", der(struct {
			Version int
			Alg     algorithm
			Key     []byte
		}{2, algorithm{asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}}, []byte("k")})), true, false},
		{"Unicode spaces around a certificate", "\u2028" + cert + "\u00a0", false, false},
		{"NEL between certificates", cert + "\u0085" + cert, false, false},
		{"ASCII white space between certificates", cert + " \t\r\n" + cert, false, true},
		{"two keys", key + key, true, false},
		{"a certificate where a key belongs", cert, true, false},
		{"a public key", opaque("PUBLIC KEY"), true, false},
		{"only white space", "  \n", true, false},
		// Key fields: the label must match what the block holds.
		{"a certificate's bytes labelled PRIVATE KEY", block("PRIVATE KEY", certDER.Bytes), true, false},
		{"a certificate's bytes labelled ENCRYPTED PRIVATE KEY", block("ENCRYPTED PRIVATE KEY", certDER.Bytes), true, false},
		{"a certificate's bytes labelled EC PRIVATE KEY", block("EC PRIVATE KEY", certDER.Bytes), true, false},
		{"opaque bytes labelled PRIVATE KEY", opaque("PRIVATE KEY"), true, false},
		{"opaque bytes labelled ENCRYPTED PRIVATE KEY", opaque("ENCRYPTED PRIVATE KEY"), true, false},
		{"a PKCS#1 key labelled PRIVATE KEY", block("PRIVATE KEY", rsaKey), true, false},
		{"a key with trailing bytes", block("PRIVATE KEY", append(append([]byte(nil), keyDER.Bytes...), 0)), true, false},
		{"legacy headers on a PKCS#8 key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: encryptedHeaders, Bytes: keyDER.Bytes})), true, false},
		{"legacy headers with a comment", legacy(map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": encryptedHeaders["DEK-Info"], "Comment": "opaque"}, make([]byte, 32)), true, false},
		{"legacy headers with text in DEK-Info", legacy(map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,opaque\u202e"}, make([]byte, 32)), true, false},
		{"legacy headers that do not say encrypted", legacy(map[string]string{"Proc-Type": "4,MIC-ONLY", "DEK-Info": encryptedHeaders["DEK-Info"]}, make([]byte, 32)), true, false},
		{"legacy ciphertext that is not whole cipher blocks", legacy(encryptedHeaders, make([]byte, 31)), true, false},
		// pem.Decode skips a block it cannot read and returns the next one:
		// whatever rides in the broken block must not pass with it.
		{"a key in a broken block before a certificate", "-----BEGIN PRIVATE KEY-----\n" + body(key) + "\n-----END CERTIFICATE-----\n" + cert, false, false},
		{"text after a bare BEGIN", "-----BEGIN x\nsome text\n" + cert, false, false},
		{"a broken block between certificates", cert + "-----BEGIN x\nsome text\n" + cert, false, false},
		{"a broken key block before a key", "-----BEGIN RSA PRIVATE KEY-----\n" + body(key) + "\n-----END PRIVATE KEY-----\n" + key, true, false},
		{"an empty BEGIN before a key", "-----BEGIN \n" + key, true, false},
		{"a certificate with headers", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
			Headers: map[string]string{"Comment": "opaque"}, Bytes: certDER.Bytes})), false, false},
	} {
		_, problem := checkPEM(tc.value, tc.key)
		require.Equal(t, tc.ok, problem == "", "%s: %s", tc.name, problem)
		require.NotContains(t, problem, "opaque")
	}
}

func TestCheckPEMGivesTheNotAfterOfEveryCertificate(t *testing.T) {
	early, _ := testCertAndKey(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	late, _ := testCertAndKey(t, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	got, problem := checkPEM(late+early, false)
	require.Empty(t, problem)
	require.Len(t, got, 2)
	require.Equal(t, 2031, got[0].Year())
	require.True(t, strings.HasPrefix(got[1].Format(time.RFC3339), "2030-01-01"))

	_, problem = checkPEM(late+early+string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})), false)
	require.Equal(t, "X.509 certificates only: block 3 of 3 does not parse as one", problem)
}

// Review of issue 17: a NotAfter of 0001-01-01T00:00:00Z (Go's zero time,
// which x509.CreateCertificate writes when none is set) would be taken for
// "no NotAfter"; such a certificate is refused like one that does not parse.
func TestCheckPEMRefusesACertificateWithAZeroNotAfter(t *testing.T) {
	zero, _ := testCertAndKey(t, time.Time{})
	valid, _ := testCertAndKey(t, time.Now().Add(time.Hour))
	_, problem := checkPEM(valid+zero, false)
	require.Equal(t, "X.509 certificates only: block 2 of 2 has no NotAfter", problem)
}

// onSM2 moves a PEM block's P-256 key to the SM2 curve (both OIDs are eight
// bytes long): crypto/x509 parses neither such a certificate nor such a key.
func onSM2(t *testing.T, p string) string {
	t.Helper()
	p256, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	require.NoError(t, err)
	sm2, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301})
	require.NoError(t, err)
	block, _ := pem.Decode([]byte(p))
	block.Bytes = bytes.ReplaceAll(block.Bytes, p256, sm2)
	return string(pem.EncodeToMemory(block))
}

// Review of issue 17: an SM2 certificate is an X.509 certificate that
// crypto/x509 does not parse; its structure is checked instead, and its
// NotAfter read from it. A key under the label still is not one.
func TestCheckPEMReadsTheStructureOfACertificateCryptoX509DoesNotParse(t *testing.T) {
	notAfter := time.Date(2051, 6, 1, 0, 0, 0, 0, time.UTC) // GeneralizedTime, past 2049
	cert, key := testCertAndKey(t, notAfter)
	sm2Cert, sm2Key := onSM2(t, cert), onSM2(t, key)
	block, _ := pem.Decode([]byte(sm2Cert))
	_, err := x509.ParseCertificate(block.Bytes)
	require.Error(t, err, "the fixture must be one crypto/x509 refuses")

	got, problem := checkPEM(sm2Cert, false)
	require.Empty(t, problem)
	require.Equal(t, []time.Time{notAfter}, got)

	_, problem = checkPEM(sm2Key, true)
	require.Empty(t, problem, "an SM2 key is served")
	keyBlock, _ := pem.Decode([]byte(sm2Key))
	for name, der := range map[string][]byte{
		"an SM2 key":        keyBlock.Bytes,
		"trailing bytes":    append(append([]byte(nil), block.Bytes...), 0),
		"a truncated one":   block.Bytes[:len(block.Bytes)-1],
		"an empty SEQUENCE": {0x30, 0x00},
	} {
		_, problem = checkPEM(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), false)
		require.Equal(t, "X.509 certificates only: block 1 of 1 does not parse as one", problem, name)
	}
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
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }

	ck, err := certKeyAnswer(t, `{"cert":`+q(chain+leaf)+`,"ca":`+q(leaf)+`}`)
	require.NoError(t, err)
	require.Equal(t, 2040, ck.CertNotAfter.Year())
	require.Equal(t, 2035, ck.EarliestNotAfter.Year())
}

// Issue 17, defect 6: an answer is served only with a cert_not_after: a
// cert that does not parse, in any of its blocks, or no cert at all, is
// refused, and the refusal names the field and block, never what they hold.
func TestCertKeyAnswerWithoutACertificateInCertIsRefused(t *testing.T) {
	chain, key := testCertAndKey(t, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC))
	keyBlock, _ := pem.Decode([]byte(key))
	asCert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: keyBlock.Bytes}))
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	for answer, want := range map[string]string{
		`{"cert":` + q(asCert+chain) + `}`:                               "answered with a cert that is not X.509 certificates only: block 1 of 2 does not parse as one",
		`{"cert":` + q(chain+asCert) + `}`:                               "answered with a cert that is not X.509 certificates only: block 2 of 2 does not parse as one",
		`{"cert":` + q(chain) + `,"target_data_cert":` + q(asCert) + `}`: "answered with a target_data_cert that is not X.509 certificates only",
		`{"private_key":` + q(key) + `,"ca":` + q(chain) + `}`:           "answered without a cert",
		`{"cert":` + q(chain) + `,"private_key":` + q(chain) + `}`:       "answered with a private_key that is not PEM of exactly one private key block",
	} {
		ck, err := certKeyAnswer(t, answer)
		require.Nil(t, ck)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, KindBadResponse, e.Kind)
		require.Contains(t, err.Error(), want)
		require.NotContains(t, err.Error(), body(key)[:16])
	}
}

// FuzzCheckPEM: whatever checkPEM accepts is blocks and white space only:
// every BEGIN line in it starts a block that decodes, of the right type.
func FuzzCheckPEM(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false)
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", true)
	f.Add("-----BEGIN \n-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----", true)
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false)
	f.Add("-----BEGIN PRIVATE KEY-----\nMAkCAQAwADAEBAA=\n-----END PRIVATE KEY-----\n", true)
	f.Add("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END EC PRIVATE KEY-----\n", true)
	f.Fuzz(func(t *testing.T, v string, key bool) {
		notAfters, problem := checkPEM(v, key)
		if problem != "" {
			return
		}
		blocks := 0
		rest := []byte(v)
		for {
			block, next := pem.Decode(rest)
			if block == nil {
				break
			}
			if _, isKey := keyShapes[block.Type]; key != isKey || !key && block.Type != "CERTIFICATE" {
				t.Fatalf("accepted a %q block in a key=%v field", block.Type, key)
			}
			_, err := x509.ParseCertificate(block.Bytes)
			if _, shaped := certificateShaped(block.Bytes); !key && err != nil && !shaped {
				t.Fatalf("accepted a block that is not a certificate in a certificate field")
			}
			if _, shaped := certificateShaped(block.Bytes); key && (err == nil || shaped) {
				t.Fatalf("accepted a certificate in a key field")
			}
			if key && len(block.Headers) == 0 && !derShaped(block.Bytes, keyShapes[block.Type]) {
				t.Fatalf("accepted a %q block that is not shaped like one", block.Type)
			}
			for name, value := range block.Headers {
				for _, r := range name + value {
					if r < ' ' || r > '~' {
						t.Fatalf("accepted a header that is not printable ASCII")
					}
				}
			}
			blocks++
			rest = next
		}
		if len(bytes.Trim(rest, " \t\r\n")) != 0 {
			t.Fatalf("accepted text after the last block")
		}
		if n := strings.Count(v, "-----BEGIN"); n != blocks {
			t.Fatalf("accepted %d BEGIN lines for %d blocks", n, blocks)
		}
		if key && blocks != 1 {
			t.Fatalf("accepted %d key blocks", blocks)
		}
		if !key && len(notAfters) != blocks {
			t.Fatalf("%d NotAfters for %d certificates", len(notAfters), blocks)
		}
		for _, na := range notAfters {
			if na.IsZero() {
				t.Fatalf("accepted a certificate with a zero NotAfter")
			}
		}
	})
}
