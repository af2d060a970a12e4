package sms

// Attack tests from the adversarial review of issue 17, defect 6 (certkey
// fields): each fails on the change it reviews.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"
)

// attackCert is a self-signed certificate with the NotAfter given, and its
// PKCS#8 key.
func attackCert(t *testing.T, notAfter time.Time) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "attack"}, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func certKeyJSON(fields map[string]string) func() string {
	return func() string { b, _ := json.Marshal(fields); return string(b) }
}

// A certificate whose NotAfter is 0001-01-01T00:00:00Z (what Go's
// x509.CreateCertificate writes when a program leaves NotAfter unset) parses,
// and its NotAfter is the zero time.Time, which CertKey and the cache take
// for "no NotAfter": the answer is served without cert_not_after, with no
// expiry warning, and cached, though the certificate expired two thousand
// years ago. In a chain, it is left out of the earliest NotAfter.
func TestAttackCertKeyWithAZeroNotAfterIsServedWithoutCertNotAfter(t *testing.T) {
	zero, key := attackCert(t, time.Time{})
	valid, _ := attackCert(t, time.Now().Add(24*time.Hour))
	for name, cert := range map[string]string{"alone": zero, "as the chain": valid + zero, "ahead of the chain": zero + valid} {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t)
			n := certKeyUpstream(t, env, certKeyJSON(map[string]string{"cert": cert, "private_key": key}))
			for i := 1; i <= 2; i++ {
				resp, status, msg := env.readCertKey("certkey/"+testTask, false)
				if status == http.StatusBadGateway {
					continue // refusing it is a fix too
				}
				require.Equal(t, http.StatusOK, status, msg)
				require.NotEmpty(t, resp.Data["cert_not_after"], "a served answer always has a real cert_not_after")
				require.NotEmpty(t, resp.Warnings, "an expired certificate is served with a warning")
				require.EqualValues(t, i, n.Load(), "an expired certificate is not cached")
			}
		})
	}
}

// A PKCS#1 RSA public key, SEQUENCE { modulus INTEGER, exponent INTEGER },
// has the shape keyShapes gives RSA PRIVATE KEY (two INTEGERs): it is served
// as a private key. README promises that key fields hold "DER shaped like
// the key their label names"; an RSA private key has nine INTEGERs, the
// first (version) 0 or 1.
func TestAttackCertKeyRSAPublicKeyServedAsPrivateKey(t *testing.T) {
	cert, _ := attackCert(t, time.Now().Add(24*time.Hour))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}))
	env := newTestEnv(t)
	certKeyUpstream(t, env, certKeyJSON(map[string]string{"cert": cert, "private_key": pub}))
	resp, status, msg := env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusBadGateway, status, "a public key was served as private_key: %v", resp != nil)
	require.Contains(t, msg, "private_key")
}

// bytes.TrimSpace, which checkPEM uses around and between blocks, trims
// Unicode white space: NEL (U+0085, a C1 control), the line and paragraph
// separators, NO-BREAK SPACE, OGHAM SPACE MARK... They are served byte for
// byte in a certificate field, though README says nothing but PEM and white
// space is there and the engine's own list calls U+0085 and U+2028 hidden.
func TestAttackCertKeyUnicodeSpacesBetweenBlocksAreServed(t *testing.T) {
	leaf, key := attackCert(t, time.Now().Add(24*time.Hour))
	chain, _ := attackCert(t, time.Now().Add(48*time.Hour))
	env := newTestEnv(t)
	certKeyUpstream(t, env, certKeyJSON(map[string]string{"cert": "\u2028" + leaf + "\u0085\u2029" + chain + "\u1680", "private_key": key}))
	resp, status, msg := env.readCertKey("certkey/"+testTask, false)
	if status == http.StatusBadGateway {
		return
	}
	require.Equal(t, http.StatusOK, status, msg)
	cert := resp.Data["cert"].(string)
	for _, r := range cert {
		if r > unicode.MaxASCII {
			t.Fatalf("cert served with U+%04X around its blocks (%d bytes)", r, len(cert))
		}
	}
	require.False(t, strings.ContainsRune(cert, '\u0085'))
}

// An SM2 certificate (ecPublicKey on the SM2 curve, Huawei Cloud's Chinese
// cryptography) is an X.509 certificate that crypto/x509 does not parse
// ("unsupported elliptic curve"): the answer is a 502, on every read, though
// README says an SM2 key is served because the engine never uses it. On
// main the same answer was served (without cert_not_after). NotAfter can be
// read from the certificate's structure (TBSCertificate's validity) without
// knowing its key's curve.
func TestAttackCertKeyWithAnSM2CertificateIsRefused(t *testing.T) {
	cert, key := attackCert(t, time.Now().Add(24*time.Hour))
	p256, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	require.NoError(t, err)
	sm2, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}) // the same length
	require.NoError(t, err)
	onSM2 := func(p string) string {
		block, _ := pem.Decode([]byte(p))
		block.Bytes = bytes.ReplaceAll(block.Bytes, p256, sm2)
		return string(pem.EncodeToMemory(block))
	}
	env := newTestEnv(t)
	certKeyUpstream(t, env, certKeyJSON(map[string]string{"cert": onSM2(cert), "private_key": onSM2(key)}))
	resp, status, msg := env.readCertKey("certkey/"+testTask, false)
	require.Equal(t, http.StatusOK, status, msg)
	require.NotEmpty(t, resp.Data["cert_not_after"])
}
