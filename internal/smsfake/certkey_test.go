package smsfake

import (
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The key-in-certificate faults put a PKCS#8 key's bytes under a
// CERTIFICATE label, as the last block of the field they name: PEM of the
// right type that no X.509 parser takes for a certificate.
func TestCertKeyFaultsHideAKeyUnderACertificateLabel(t *testing.T) {
	s := New(Options{Tokens: []string{"tok"}, Tasks: map[string]string{"t1": "p1"}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	auth := map[string]string{"X-Auth-Token": "tok"}
	for mode, field := range map[string]string{FaultKeyInCertBlock: "cert", FaultKeyAfterMgmtCert: "target_mgmt_cert", FaultKeyInCABlock: "ca"} {
		require.NoError(t, s.AddFault(Fault{Mode: mode, Call: callCertKey, Times: 1}))
		resp, body := get(t, srv, "/v3/tasks/t1/certkey?enable_ca_cert=true", auth)
		require.Equal(t, 200, resp.StatusCode, mode)
		var blocks []*pem.Block
		rest := []byte(body[field].(string))
		for block, next := pem.Decode(rest); block != nil; block, next = pem.Decode(next) {
			require.Equal(t, "CERTIFICATE", block.Type, mode)
			blocks = append(blocks, block)
		}
		last := blocks[len(blocks)-1]
		_, err := x509.ParsePKCS8PrivateKey(last.Bytes)
		require.NoError(t, err, "%s: a key's bytes", mode)
		for _, b := range blocks[:len(blocks)-1] {
			_, err := x509.ParseCertificate(b.Bytes)
			require.NoError(t, err, "%s: the blocks before it are certificates", mode)
		}
		if mode == FaultKeyAfterMgmtCert {
			require.Len(t, blocks, 2)
		}
	}
}
