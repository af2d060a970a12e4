package huawei

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxCertKeyBody bounds a certkey answer: seven PEM fields, certificates and
// keys, fit many times over.
const maxCertKeyBody = 256 << 10

// CertKey is the channel certificate and keys of a task
// (GET /v3/tasks/{task_id}/certkey). Fields SMS did not return are empty.
type CertKey struct {
	Cert                 string `json:"cert"`
	PrivateKey           string `json:"private_key"`
	CA                   string `json:"ca"`
	TargetMgmtCert       string `json:"target_mgmt_cert"`
	TargetMgmtPrivateKey string `json:"target_mgmt_private_key"`
	TargetDataCert       string `json:"target_data_cert"`
	TargetDataPrivateKey string `json:"target_data_private_key"`

	// CertNotAfter is the NotAfter of cert, when it parses as an X.509
	// certificate; EarliestNotAfter the earliest NotAfter of every
	// certificate that parses, in any field: past it, something served is
	// no longer valid.
	CertNotAfter     time.Time `json:"-"`
	EarliestNotAfter time.Time `json:"-"`
}

// CertKeyField is one field of a certkey answer, by its JSON name.
type CertKeyField struct {
	Name  string
	Value string
	Key   bool // a private key field (the others hold certificates)
}

// Fields lists the fields in the reference's order, present or not.
func (ck *CertKey) Fields() []CertKeyField {
	return []CertKeyField{
		{"cert", ck.Cert, false},
		{"private_key", ck.PrivateKey, true},
		{"ca", ck.CA, false},
		{"target_mgmt_cert", ck.TargetMgmtCert, false},
		{"target_mgmt_private_key", ck.TargetMgmtPrivateKey, true},
		{"target_data_cert", ck.TargetDataCert, false},
		{"target_data_private_key", ck.TargetDataPrivateKey, true},
	}
}

// CertKey returns the certificate and keys of a task's secure transmission
// channel. enableCA asks SMS for the CA certificate too. Every field is
// checked to be PEM of the type that belongs there; an answer that is not is
// an *Error that names the field and repeats none of its content.
func (c *Client) CertKey(ctx context.Context, taskID string, enableCA bool) (ck *CertKey, err error) {
	defer recovered("SMS", c.logger, &err)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	k := c.smsGet(taskPath(taskID)+"/certkey?enable_ca_cert="+strconv.FormatBool(enableCA), maxCertKeyBody,
		"sms:server:getCert", fmt.Sprintf("has no task %q", taskID))
	ans, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	if ans.status != http.StatusOK {
		return nil, c.classify(k, ans)
	}
	var body CertKey
	if err := c.decode(k, ans, &body); err != nil {
		return nil, err
	}
	present := 0
	for _, f := range body.Fields() {
		if f.Value == "" {
			continue
		}
		present++
		if problem := checkPEM(f.Value, f.Key); problem != "" {
			return nil, c.bad(k, ans, fmt.Sprintf("answered with a %s that is not %s", f.Name, problem))
		}
		if !f.Key {
			for i, na := range notAfters(f.Value) {
				if f.Name == "cert" && i == 0 {
					// The first block is the certificate itself; any
					// other is its chain.
					body.CertNotAfter = na
				}
				if !na.IsZero() && (body.EarliestNotAfter.IsZero() || na.Before(body.EarliestNotAfter)) {
					body.EarliestNotAfter = na
				}
			}
		}
	}
	if present == 0 {
		// {}, null, or an error body sent with 200: serving (and caching)
		// it would hand Agent templates empty files.
		return nil, c.bad(k, ans, "answered without any certificate or key")
	}
	return &body, nil
}

// privateKeyTypes are the PEM block types a private key may come in:
// PKCS#8, plain or encrypted, and the legacy PKCS#1 and SEC 1 forms (which
// carry their encryption in PEM headers). The engine never decrypts one.
var privateKeyTypes = map[string]bool{
	"PRIVATE KEY": true, "ENCRYPTED PRIVATE KEY": true, "RSA PRIVATE KEY": true, "EC PRIVATE KEY": true,
}

// checkPEM returns "" when v is PEM holding what the field should hold (one
// or more CERTIFICATE blocks, or exactly one private key block) and nothing
// else but white space; otherwise what it should have been. It never says
// what v holds.
func checkPEM(v string, key bool) string {
	want := "PEM of one or more CERTIFICATE blocks"
	if key {
		want = "PEM of exactly one private key block"
	}
	rest := []byte(v)
	blocks := 0
	for {
		rest = bytes.TrimSpace(rest)
		if len(rest) == 0 {
			break
		}
		// pem.Decode skips any text before a block: refuse it here.
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return want
		}
		block, next := pem.Decode(rest)
		if block == nil {
			return want // not PEM, or something else around the blocks
		}
		// pem.Decode also skips a block it cannot read and returns the
		// next: what it consumed must hold exactly one BEGIN line, or a
		// broken block (anything at all, a key in a certificate field)
		// would pass unseen.
		if bytes.Count(rest[:len(rest)-len(next)], []byte("-----BEGIN")) != 1 {
			return want
		}
		if key && !privateKeyTypes[block.Type] || !key && block.Type != "CERTIFICATE" {
			return want
		}
		// Headers belong to encrypted legacy keys; in a certificate block
		// they would carry text past this check into a field served as a
		// certificate.
		if !key && len(block.Headers) > 0 {
			return want
		}
		blocks++
		rest = next
	}
	if blocks == 0 || key && blocks != 1 {
		return want
	}
	return ""
}

// notAfters returns, for each block of a certificate field that checkPEM
// accepted, its NotAfter, or the zero time when it does not parse as an
// X.509 certificate.
func notAfters(v string) []time.Time {
	var out []time.Time
	rest := []byte(v)
	for {
		block, next := pem.Decode(rest)
		if block == nil {
			return out
		}
		var na time.Time
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			na = cert.NotAfter
		}
		out = append(out, na)
		rest = next
	}
}
