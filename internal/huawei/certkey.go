package huawei

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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

	// CertNotAfter is the NotAfter of cert's first certificate (CertKey
	// refuses an answer without one); EarliestNotAfter the earliest NotAfter
	// of every certificate, in any field: past it, something served is no
	// longer valid.
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
// checked to hold what belongs there (see checkPEM), and cert must be
// present; an answer that is not so is an *Error that names the field and
// repeats none of its content.
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
		if f.Value != "" {
			present++
		}
	}
	if present == 0 {
		// {}, null, or an error body sent with 200: serving (and caching)
		// it would hand Agent templates empty files.
		return nil, c.bad(k, ans, "answered without any certificate or key")
	}
	if body.Cert == "" {
		// Every answer served says when its certificate expires.
		return nil, c.bad(k, ans, "answered without a cert")
	}
	for _, f := range body.Fields() {
		if f.Value == "" {
			continue
		}
		notAfters, problem := checkPEM(f.Value, f.Key)
		if problem != "" {
			return nil, c.bad(k, ans, fmt.Sprintf("answered with a %s that is not %s", f.Name, problem))
		}
		for i, na := range notAfters {
			if f.Name == "cert" && i == 0 {
				// The first block is the certificate itself; any other
				// is its chain.
				body.CertNotAfter = na
			}
			if body.EarliestNotAfter.IsZero() || na.Before(body.EarliestNotAfter) {
				body.EarliestNotAfter = na
			}
		}
	}
	return &body, nil
}

// keyShape is what the DER of a private key block starts with: a SEQUENCE
// whose first elements have the universal tags given, the first an INTEGER
// version with one of the values given when versions is not nil.
type keyShape struct {
	tags     []int
	versions []byte
}

// keyShapes are the PEM block types a private key may come in, PKCS#8
// (plain or encrypted) and the legacy PKCS#1 and SEC 1 forms, each with its
// shape. The engine never parses a key further (it never uses one, and need
// not know its algorithm), but a certificate, a public key or arbitrary
// bytes under a key label are refused.
var keyShapes = map[string]keyShape{
	// version (0, or 1 for RFC 5958's OneAsymmetricKey), algorithm, key
	"PRIVATE KEY": {[]int{asn1.TagInteger, asn1.TagSequence, asn1.TagOctetString}, []byte{0, 1}},
	// algorithm, ciphertext
	"ENCRYPTED PRIVATE KEY": {[]int{asn1.TagSequence, asn1.TagOctetString}, nil},
	// version (1 with more primes), modulus, public and private exponents,
	// two primes, two exponents, coefficient: a PKCS#1 public key has only
	// the modulus and the public exponent.
	"RSA PRIVATE KEY": {[]int{asn1.TagInteger, asn1.TagInteger, asn1.TagInteger, asn1.TagInteger,
		asn1.TagInteger, asn1.TagInteger, asn1.TagInteger, asn1.TagInteger, asn1.TagInteger}, []byte{0, 1}},
	// version (always 1), key
	"EC PRIVATE KEY": {[]int{asn1.TagInteger, asn1.TagOctetString}, []byte{1}},
}

// legacyEncrypted are the types that may carry RFC 1421 encryption headers
// (Proc-Type and DEK-Info); their content is then ciphertext.
var legacyEncrypted = map[string]bool{"RSA PRIVATE KEY": true, "EC PRIVATE KEY": true}

// dekInfo is the DEK-Info of a legacy encrypted key: a cipher name and a
// hex IV.
var dekInfo = regexp.MustCompile(`^[A-Z0-9-]{1,32},[0-9A-Fa-f]{16,64}$`)

// checkPEM returns "" when v is PEM holding what the field should hold and
// nothing else but ASCII white space, otherwise what it should have been, never
// what it holds. A certificate field holds one or more CERTIFICATE blocks,
// each an X.509 certificate (see certificateNotAfter): a key's bytes under a
// certificate's label would otherwise be served as a certificate, and
// written where certificates go (often a world-readable file). notAfters
// are their NotAfter, in order. A key field holds exactly one block of a
// private key type, shaped like such a key (see keyShapes) or encrypted
// under legacy PEM headers.
func checkPEM(v string, key bool) (notAfters []time.Time, problem string) {
	want := "PEM of one or more CERTIFICATE blocks"
	if key {
		want = "PEM of exactly one private key block"
	}
	blocks, ok := pemBlocks(v)
	if !ok || len(blocks) == 0 || key && len(blocks) != 1 {
		return nil, want
	}
	if key {
		b := blocks[0]
		shape, known := keyShapes[b.Type]
		switch {
		case !known:
			return nil, want
		case len(b.Headers) > 0:
			if !legacyEncrypted[b.Type] || !encryptionHeaders(b.Headers) || len(b.Bytes) == 0 || len(b.Bytes)%8 != 0 {
				return nil, "a private key: its PEM headers are not a legacy encryption's (Proc-Type 4,ENCRYPTED and DEK-Info) over whole cipher blocks"
			}
		case !derShaped(b.Bytes, shape):
			return nil, fmt.Sprintf("a private key: its %s block does not hold one", b.Type)
		}
		return nil, ""
	}
	for i, b := range blocks {
		// Headers would carry text past this check into a field served as
		// a certificate.
		if b.Type != "CERTIFICATE" || len(b.Headers) > 0 {
			return nil, want
		}
		notAfter, ok := certificateNotAfter(b.Bytes)
		if !ok {
			return nil, fmt.Sprintf("X.509 certificates only: block %d of %d does not parse as one", i+1, len(blocks))
		}
		if notAfter.IsZero() {
			// 0001-01-01T00:00:00Z, what Go writes for a NotAfter left
			// unset: taken for "none", it would be served without
			// cert_not_after, with no expiry warning, and cached.
			return nil, fmt.Sprintf("X.509 certificates only: block %d of %d has no NotAfter", i+1, len(blocks))
		}
		notAfters = append(notAfters, notAfter)
	}
	return notAfters, ""
}

// pemBlocks splits v into PEM blocks, refusing anything else but white
// space around or between them.
func pemBlocks(v string) ([]*pem.Block, bool) {
	var blocks []*pem.Block
	rest := []byte(v)
	for {
		// ASCII white space only: bytes.TrimSpace would also pass Unicode
		// spaces, NEL (a C1 control) and the line and paragraph separators,
		// which would then be served byte for byte.
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			return blocks, true
		}
		// pem.Decode skips any text before a block: refuse it here.
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, false
		}
		block, next := pem.Decode(rest)
		if block == nil {
			return nil, false // not PEM, or something else around the blocks
		}
		// pem.Decode also skips a block it cannot read and returns the
		// next: what it consumed must hold exactly one BEGIN line, or a
		// broken block (anything at all, a key in a certificate field)
		// would pass unseen.
		if bytes.Count(rest[:len(rest)-len(next)], []byte("-----BEGIN")) != 1 {
			return nil, false
		}
		blocks = append(blocks, block)
		rest = next
	}
}

// encryptionHeaders reports whether h are exactly the headers of legacy PEM
// encryption, in printable ASCII.
func encryptionHeaders(h map[string]string) bool {
	return len(h) == 2 && h["Proc-Type"] == "4,ENCRYPTED" && dekInfo.MatchString(h["DEK-Info"])
}

// derShaped reports whether der is one ASN.1 SEQUENCE, with nothing after
// it, shaped as shape says.
func derShaped(der []byte, shape keyShape) bool {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return false
	}
	inner := seq.Bytes
	for i, tag := range shape.tags {
		var el asn1.RawValue
		if inner, err = asn1.Unmarshal(inner, &el); err != nil || el.Class != asn1.ClassUniversal || el.Tag != tag {
			return false
		}
		if i == 0 && shape.versions != nil && (len(el.Bytes) != 1 || !bytes.Contains(shape.versions, el.Bytes)) {
			return false
		}
	}
	return true
}

// certificateNotAfter returns the NotAfter of the X.509 certificate der, and
// whether it is one. crypto/x509 parses most; one it refuses (an SM2 key,
// whose curve it does not know, and Huawei Cloud serves such certificates)
// is accepted when its DER has a certificate's structure (RFC 5280, 4.1),
// with nothing after it, which a key or arbitrary bytes do not have. The
// parser's message may quote the bytes: it is never repeated.
func certificateNotAfter(der []byte) (time.Time, bool) {
	if cert, err := x509.ParseCertificate(der); err == nil {
		return cert.NotAfter, true
	}
	return certificateShaped(der)
}

// certificateShaped reads der as Certificate and TBSCertificate (RFC 5280,
// 4.1) without interpreting the key, names or extensions, and returns the
// NotAfter of its validity.
func certificateShaped(der []byte) (notAfter time.Time, ok bool) {
	input := cryptobyte.String(der)
	var cert, tbs, validity, spki cryptobyte.String
	if !input.ReadASN1(&cert, cbasn1.SEQUENCE) || !input.Empty() ||
		!cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return time.Time{}, false
	}
	versionTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if tbs.PeekASN1Tag(versionTag) {
		var v cryptobyte.String
		var version int64
		if !tbs.ReadASN1(&v, versionTag) || !v.ReadASN1Integer(&version) || !v.Empty() || version < 0 || version > 2 {
			return time.Time{}, false
		}
	}
	var serial big.Int
	if !tbs.ReadASN1Integer(&serial) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // signature algorithm
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!tbs.ReadASN1(&validity, cbasn1.SEQUENCE) ||
		!readTime(&validity, new(time.Time)) || !readTime(&validity, &notAfter) || !validity.Empty() ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // subject
		!tbs.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!spki.SkipASN1(cbasn1.SEQUENCE) || // the key's algorithm
		!spki.SkipASN1(cbasn1.BIT_STRING) || !spki.Empty() ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific()) || // issuerUniqueID
		!tbs.SkipOptionalASN1(cbasn1.Tag(2).ContextSpecific()) || // subjectUniqueID
		!tbs.SkipOptionalASN1(cbasn1.Tag(3).Constructed().ContextSpecific()) || // extensions
		!tbs.Empty() {
		return time.Time{}, false
	}
	var signature asn1.BitString
	if !cert.SkipASN1(cbasn1.SEQUENCE) || // signature algorithm
		!cert.ReadASN1BitString(&signature) || !cert.Empty() {
		return time.Time{}, false
	}
	return notAfter, true
}

// readTime reads a validity time, UTCTime or GeneralizedTime.
func readTime(s *cryptobyte.String, t *time.Time) bool {
	if s.PeekASN1Tag(cbasn1.UTCTime) {
		return s.ReadASN1UTCTime(t)
	}
	return s.ReadASN1GeneralizedTime(t)
}
