// Command sms-fake serves a local stand-in for the Huawei Cloud SMS passphrase
// API and the IAM token API, for `make dev`, the integration tests and the
// benchmarks. It listens on loopback only. See internal/smsfake.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

func main() {
	var (
		listen        = flag.String("listen", "127.0.0.1:0", "loopback address to listen on (port 0 picks a free one)")
		urlFile       = flag.String("url-file", "", "write the base URL here once listening")
		useTLS        = flag.Bool("tls", false, "serve https with a self-signed certificate")
		caFile        = flag.String("ca-file", "", "with -tls: write the certificate (PEM) here, for ca_cert")
		token         = flag.String("token", "demo-token", "static token accepted as X-Auth-Token (empty: none)")
		accessKey     = flag.String("access-key", "demo-access-key", "access key accepted in signatures (empty: none)")
		secretKey     = flag.String("secret-key", "demo-secret-key", "secret key of -access-key")
		securityToken = flag.String("security-token", "", "if set, -access-key is temporary and needs this X-Security-Token")
		user          = flag.String("user", "demo-user", "IAM user name (empty: none)")
		password      = flag.String("password", "demo-password", "IAM user password")
		domain        = flag.String("domain", "demo-domain", "IAM account (domain) name")
		tokenLifetime = flag.Duration("token-lifetime", 24*time.Hour, "lifetime of IAM tokens")
		tokenSize     = flag.Int("token-size", 4096, "length of IAM tokens (real ones run to several KB)")
		lockoutAfter  = flag.Int("lockout-after", 0, "lock an IAM user after this many consecutive failed logins (0: never)")
		tasks         = flag.String("tasks", "demo-task-0001=correct-horse-battery-staple,team-a-0001=team-a-secret,team-b-0001=team-b-secret",
			"comma-separated task_id=passphrase pairs")
		taskMeta = flag.String("task-meta", "",
			"comma-separated task_id=name:enterprise_project_id[:state] entries, for ShowTask and ListTasks (default: named after the id, in enterprise project 0)")
		anyTask = flag.Bool("any-task", false, "answer any well-formed task id with a passphrase derived from it")
		latency = flag.Duration("latency", 0, "delay added before every SMS answer")
	)
	flag.Parse()

	opts := smsfake.Options{
		TokenLifetime: *tokenLifetime,
		TokenSize:     *tokenSize,
		LockoutAfter:  *lockoutAfter,
		Tasks:         map[string]string{},
		AnyTask:       *anyTask,
		Latency:       *latency,
	}
	if *token != "" {
		opts.Tokens = []string{*token}
	}
	if *accessKey != "" {
		opts.AccessKeys = map[string]string{*accessKey: *secretKey}
		if *securityToken != "" {
			opts.SecurityTokens = map[string]string{*accessKey: *securityToken}
		}
	}
	if *user != "" {
		opts.Users = []smsfake.User{{Domain: *domain, Name: *user, Password: *password}}
	}
	for _, pair := range strings.Split(*tasks, ",") {
		if id, pass, ok := strings.Cut(strings.TrimSpace(pair), "="); ok {
			opts.Tasks[id] = pass
		}
	}
	opts.TaskMeta = map[string]smsfake.TaskMeta{}
	for _, entry := range strings.Split(*taskMeta, ",") {
		id, meta, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			continue
		}
		parts := strings.SplitN(meta, ":", 3)
		m := smsfake.TaskMeta{Name: parts[0], EnterpriseProjectID: "0", State: "READY"}
		if len(parts) > 1 {
			m.EnterpriseProjectID = parts[1]
		}
		if len(parts) > 2 {
			m.State = parts[2]
		}
		opts.TaskMeta[id] = m
	}

	if err := serve(opts, *listen, *useTLS, *caFile, *urlFile); err != nil {
		log.Fatalf("sms-fake: %v", err)
	}
}

// serve listens on the loopback address listen and serves the stand-in until
// SIGINT or SIGTERM.
func serve(opts smsfake.Options, listen string, useTLS bool, caFile, urlFile string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-listen must be a loopback address, not %q", host)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		return err
	}

	// With -tls, HTTP/2 is offered as the real endpoints do; the connection
	// faults then reset streams instead of connections.
	srv := &http.Server{
		Handler:           smsfake.New(opts),
		ReadHeaderTimeout: 10 * time.Second,
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
		cert, pemBytes, err := selfSigned()
		if err != nil {
			_ = ln.Close()
			return err
		}
		// 0600: read by the scripts and tests of the same user only.
		if caFile != "" {
			if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
				_ = ln.Close()
				return err
			}
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}

	base := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	if urlFile != "" {
		if err := os.WriteFile(urlFile, []byte(base+"\n"), 0o600); err != nil {
			_ = ln.Close()
			return err
		}
	}
	log.Printf("sms-fake: serving SMS and IAM on %s (control API under %s/__fake/)", base, base)

	go func() {
		<-ctx.Done()
		// The signal ended ctx; the shutdown gets 5 seconds of its own.
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "sms-fake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}
