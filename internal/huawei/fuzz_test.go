package huawei

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Fuzz targets; the seed corpus lives in testdata/fuzz/<target>/. CI runs each
// for a few seconds (make fuzz-ci); longer runs: make fuzz FUZZTIME=10m.

const (
	fuzzToken    = "fuzz-token-7d3e9a1b5c2f4e6a8b0c"
	fuzzPassword = "fz-pw-1c3e5a7b9d2f4a6c"
)

// FuzzDecodeResponse feeds arbitrary answers to the passphrase decoder: it
// must never panic, accept only well-formed answers for the task asked, and
// build error messages that are bounded, printable and free of credentials.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, []byte(`{"task_id":"t1","passphrase":"p"}`), "req-1")
	f.Add(200, []byte(`{"task_id":"t2","passphrase":"p"}`), "")
	f.Add(200, []byte(`{"passphrase":null}`), "")
	f.Add(403, []byte(`{"error_code":"SMS.9004","error_msg":"no","encoded_authorization_message":"ENC"}`), "r")
	f.Add(401, []byte(`{"error":{"code":401,"title":"Unauthorized","message":"`+fuzzToken+`"}}`), "r")
	f.Add(500, []byte(`{"code":"X","message":"\u0000\u001b[31mred"}`), "a\nb")
	f.Add(429, []byte("not json"), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, requestID string) {
		if status < 100 || status > 999 {
			return
		}
		c := &Client{redact: newRedactor([]string{fuzzToken}, nil), logger: hclog.NewNullLogger()}
		sent, _ := http.NewRequest("GET", "https://sms.example.com/", nil)
		sent.Header.Set("X-Auth-Token", "echoed-token-1234")
		ans := &answer{status: status, header: http.Header{"X-Request-Id": {requestID}}, body: body, sent: sent}
		if len(body) > maxPassphraseBody {
			ans.body, ans.tooLarge = nil, true
		}
		k := call{service: "SMS", limit: maxPassphraseBody, notFound: `has no task "t1"`}

		passphrase, err := c.passphraseFrom(k, ans, "t1")
		if err == nil {
			if status != http.StatusOK || len(passphrase) > maxPassphraseLen {
				t.Fatalf("accepted status %d, passphrase of %d bytes", status, len(passphrase))
			}
			return
		}
		checkError(t, err, fuzzToken, "echoed-token-1234")
	})
}

// checkError asserts what every error of the client must be: an *Error of a
// known kind whose text is bounded, printable and holds no credential.
func checkError(t *testing.T, err error, secrets ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error of type %T: %v", err, err)
	}
	if e.Kind < KindNotFound || e.Kind > KindInternal || e.Kind == KindInternal {
		t.Fatalf("error of kind %d: %v", e.Kind, e)
	}
	msg := e.Error()
	for _, secret := range secrets {
		if strings.Contains(msg, secret) {
			t.Fatalf("message leaks a credential: %q", msg)
		}
		for i := 0; i+minFragment <= len(secret); i++ {
			if strings.Contains(msg, secret[i:i+minFragment]) {
				t.Fatalf("message leaks a piece of a credential: %q", msg)
			}
		}
	}
	if strings.Contains(msg, "encoded_authorization_message") {
		t.Fatalf("message carries the encoded authorization message: %q", msg)
	}
	for _, part := range []string{e.Code, e.Message, e.RequestID} {
		if len(part) > maxUpstreamText+3 {
			t.Fatalf("unbounded upstream text (%d bytes)", len(part))
		}
		for _, r := range part {
			if hidden(r) {
				t.Fatalf("hidden character U+%04X in %q", r, part)
			}
		}
		if !utf8.ValidString(part) {
			t.Fatalf("invalid UTF-8 in %q", part)
		}
	}
}

// rawUpstream is a TCP server that answers the request under test with
// whatever bytes it is given, and other requests with a good canned answer.
type rawUpstream struct {
	ln   net.Listener
	mu   sync.Mutex
	raw  []byte
	iam  bool // the fuzzed bytes answer IAM's token request, not SMS
	hold bool // keep the connection open after writing, until the client leaves
	wg   sync.WaitGroup
}

const (
	goodToken = "HTTP/1.1 201 Created\r\nX-Subject-Token: MIIgood-token-0123456789\r\nContent-Type: application/json\r\nContent-Length: 87\r\n\r\n" +
		`{"token":{"issued_at":"2026-01-01T00:00:00.000000Z","expires_at":"2099-01-01T00:00:00Z"}}`
	goodPassphrase = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n" +
		`{"task_id":"t1","passphrase":"p-0001"}`
)

func startRawUpstream(tb testing.TB) *rawUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				u.serve(conn)
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

func (u *rawUpstream) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	u.mu.Lock()
	raw, iam, hold := u.raw, u.iam, u.hold
	u.mu.Unlock()
	isIAM := req.URL.Path == "/v3/auth/tokens"
	switch {
	case isIAM == iam:
		_, _ = conn.Write(raw)
		if hold {
			_, _ = conn.Read(make([]byte, 1)) // until the client gives up
		}
	case isIAM:
		_, _ = conn.Write([]byte(goodToken))
	default:
		_, _ = conn.Write([]byte(goodPassphrase))
	}
}

// FuzzRawUpstream runs the real client, over a real socket, against an
// upstream (SMS, or IAM for the password method) that answers with
// fuzzer-chosen bytes: status line, headers, body, early close. Whatever it
// sends, the call ends in time with a passphrase or an *Error of a
// documented kind that holds no credential; nothing panics.
func FuzzRawUpstream(f *testing.F) {
	for _, seed := range []string{
		goodPassphrase,
		// Defect 1: a retryable status whose body ends early.
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n{\"error_code\":",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 50\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
		"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n{\"error_code\":\"APIGW.0301\",\"error_msg\":\"" + fuzzToken + " " + fuzzPassword + "\"}",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\n{\"task_id\":\"t1\",\"passphrase\":\"p\"",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
		"HTTP/1.1 200 OK\r\nX-Request-Id: " + fuzzToken + "\r\nContent-Length: 40\r\n\r\n{\"task_id\":\"t1\",\"passphrase\":\"p-0001\"}",
		"",
	} {
		f.Add(false, false, []byte(seed))
		f.Add(true, false, []byte(strings.Replace(seed, "passphrase", "token", 1)))
	}
	f.Add(false, true, []byte("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{\"task_id\""))
	f.Add(true, true, []byte("HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n"))

	u := startRawUpstream(f)
	base := "http://" + u.ln.Addr().String()
	f.Fuzz(func(t *testing.T, iam, hold bool, raw []byte) {
		u.mu.Lock()
		u.raw, u.iam, u.hold = raw, iam, hold
		u.mu.Unlock()
		opts := Options{Endpoint: base, Method: MethodToken, Token: fuzzToken, Timeout: 300 * time.Millisecond,
			MaxRetries: 1, Logger: hclog.NewNullLogger()}
		if iam {
			opts.Method, opts.Token = MethodPassword, ""
			opts.IAMEndpoint, opts.Username, opts.Password, opts.DomainName = base, "u", fuzzPassword, "d"
		}
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		passphrase, err := c.Passphrase(context.Background(), "t1")
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Fatalf("the call took %s", elapsed)
		}
		if err == nil {
			if len(passphrase) > maxPassphraseLen {
				t.Fatalf("passphrase of %d bytes", len(passphrase))
			}
			return
		}
		checkError(t, err, fuzzToken, fuzzPassword)
	})
}

// FuzzSignatureMatchesTheVerifier signs arbitrary requests with the client's
// signer and checks the stand-in's independent implementation computes the
// same signature: two readings of the spec that must agree on every input.
func FuzzSignatureMatchesTheVerifier(f *testing.F) {
	f.Add("/v3/tasks/t1/passphrase", "", "proj", "ak", "sk")
	f.Add("/path", "limit=1", "", "AccessKey", "SecretKey")
	f.Add("/a b/ü/%", "multi=3&multi=1&multi=2&test=一 (&=?!#%.*)&path=/tmp/123&enable=true", " spaced ", "k", "s")
	f.Add("", "a-b=1&a=2&a=1", "x", "k", "s")
	f.Fuzz(func(t *testing.T, path, rawQuery, projectID, accessKey, secretKey string) {
		u := &url.URL{Scheme: "https", Host: "sms.example.com", Path: path, RawQuery: rawQuery}
		h := http.Header{}
		h.Set("X-Sdk-Date", "20261127T010203Z")
		if projectID != "" {
			h.Set("X-Project-Id", projectID)
		}
		auth := signRequest("GET", u, u.Host, h, nil, accessKey, secretKey)

		uri := canonicalURI(path)
		if !strings.HasSuffix(uri, "/") {
			t.Fatalf("canonical URI %q does not end in /", uri)
		}
		for _, seg := range strings.Split(path, "/") {
			if dec, err := url.PathUnescape(sdkEscape(seg)); err != nil || dec != seg {
				t.Fatalf("escaping of %q does not round-trip: %q %v", seg, dec, err)
			}
		}

		names, _ := canonicalHeaders(u.Host, h)
		want := smsfake.Signature("GET", path, u.Query(), func(name string) string {
			if name == "host" {
				return u.Host
			}
			return h.Get(name)
		}, names, nil, "20261127T010203Z", secretKey)
		if !strings.HasSuffix(auth, ", Signature="+want) {
			t.Fatalf("engine and stand-in disagree for path %q query %q: %s vs %s", path, rawQuery, auth, want)
		}
	})
}
