package smsfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"time"
)

// certKeySet is a task's channel certificates and keys, as
// GET /v3/tasks/{task_id}/certkey answers them (PEM).
type certKeySet struct {
	CA                   string `json:"ca"`
	Cert                 string `json:"cert"`
	PrivateKey           string `json:"private_key"`
	TargetMgmtCert       string `json:"target_mgmt_cert"`
	TargetMgmtPrivateKey string `json:"target_mgmt_private_key"`
	TargetDataCert       string `json:"target_data_cert"`
	TargetDataPrivateKey string `json:"target_data_private_key"`
}

// newCertKeySet makes a CA and three leaf certificates with their keys: the
// source's, and the target's for management and for data. The target's
// management key is encrypted with the task's passphrase (legacy PEM
// encryption), as the passphrase is what unlocks the channel's keys; the
// others are PKCS#8.
func newCertKeySet(name, passphrase string, notBefore, notAfter time.Time) (*certKeySet, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "sms-fake channel CA " + name},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage) (certPEM string, key *ecdsa.PrivateKey, err error) {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return "", nil, err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), key, nil
	}
	pkcs8 := func(key *ecdsa.PrivateKey) (string, error) {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
	}

	set := &certKeySet{CA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	var srcKey, mgmtKey, dataKey *ecdsa.PrivateKey
	if set.Cert, srcKey, err = leaf(name+" source agent", x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	if set.TargetMgmtCert, mgmtKey, err = leaf(name+" target management", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if set.TargetDataCert, dataKey, err = leaf(name+" target data", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if set.PrivateKey, err = pkcs8(srcKey); err != nil {
		return nil, err
	}
	if set.TargetDataPrivateKey, err = pkcs8(dataKey); err != nil {
		return nil, err
	}
	ecDER, err := x509.MarshalECPrivateKey(mgmtKey)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 SMS's keys are what the task passphrase unlocks; legacy PEM encryption is what such keys come in.
	encrypted, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", ecDER, []byte(passphrase), x509.PEMCipherAES256) //nolint:staticcheck // see above
	if err != nil {
		return nil, err
	}
	set.TargetMgmtPrivateKey = string(pem.EncodeToMemory(encrypted))
	return set, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	return n
}

// certKeySetLocked returns a task's set, making it on first use. The caller
// holds s.mu.
func (s *Server) certKeySetLocked(id string) (*certKeySet, bool) {
	m, ok := s.metaOf(id)
	if !ok {
		return nil, false
	}
	set, ok := s.certKeys[id]
	if !ok {
		now := s.now()
		var err error
		if set, err = newCertKeySet(m.Name, s.tasks[id], now.Add(-time.Hour), now.Add(s.opts.CertValidity)); err != nil {
			return nil, false
		}
		s.certKeys[id] = set
	}
	return set, true
}

// certKeyReply is the normal answer of GET /v3/tasks/{task_id}/certkey: the
// task's set, made on first request and kept until RotateCertKey; "ca" only
// when enable_ca_cert=true.
func (s *Server) certKeyReply(r *http.Request, taskID string) reply {
	if _, refusal := s.authorized(r, callCertKey, taskID); refusal != nil {
		return *refusal
	}
	s.mu.Lock()
	set, ok := s.certKeySetLocked(taskID)
	var out certKeySet
	if ok {
		out = *set
	}
	s.mu.Unlock()
	if !ok {
		return smsError(http.StatusNotFound, "SMS.1801", "The task does not exist.")
	}
	if r.URL.Query().Get("enable_ca_cert") != "true" {
		out.CA = ""
	}
	return jsonReply(http.StatusOK, out)
}

// RotateCertKey makes a task's certificates and keys anew on the next
// request, as SMS does when a task's channel is set up again.
func (s *Server) RotateCertKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.certKeys, id)
}

// CertKeyOf returns a task's current certificates and keys by field name
// (made now if need be), for tests to compare with what the engine served.
func (s *Server) CertKeyOf(id string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.certKeySetLocked(id)
	if !ok {
		return nil
	}
	return map[string]string{
		"ca": set.CA, "cert": set.Cert, "private_key": set.PrivateKey,
		"target_mgmt_cert": set.TargetMgmtCert, "target_mgmt_private_key": set.TargetMgmtPrivateKey,
		"target_data_cert": set.TargetDataCert, "target_data_private_key": set.TargetDataPrivateKey,
	}
}

// certKeyFault is a certkey answer with a fault in its content. The key
// material in it is made for the fault and belongs to no task.
func certKeyFault(mode, taskID string, now time.Time) reply {
	notBefore, notAfter := now.Add(-time.Hour), now.Add(30*24*time.Hour)
	if mode == FaultExpiredCert {
		notBefore, notAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	}
	set, err := newCertKeySet("fault "+taskID, "fault-passphrase", notBefore, notAfter)
	if err != nil {
		return smsError(http.StatusInternalServerError, "SMS.0001", "System error.")
	}
	switch mode {
	case FaultMalformedPEM:
		set.Cert = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
	case FaultKeyAsCert:
		set.Cert = set.PrivateKey
	case FaultKeyInCertBlock:
		set.Cert = relabelled(set.PrivateKey)
	case FaultKeyAfterMgmtCert:
		set.TargetMgmtCert += relabelled(set.TargetDataPrivateKey)
	case FaultKeyInCABlock:
		set.CA = relabelled(set.PrivateKey)
	}
	return jsonReply(http.StatusOK, set)
}

// relabelled is a PEM key's bytes under a CERTIFICATE label: well-formed PEM
// of the type a certificate field holds, and no certificate.
func relabelled(keyPEM string) string {
	block, _ := pem.Decode([]byte(keyPEM))
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}))
}
