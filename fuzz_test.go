package sms

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Fuzz targets; the seed corpus lives in testdata/fuzz/<target>/. CI runs each
// for a few seconds (make fuzz-ci); longer runs: make fuzz FUZZTIME=10m.

// FuzzTaskIDPath checks that whatever passes validation lands in exactly one
// path segment of the upstream URL, unchanged, and that whatever fails it gets
// an error naming task_id without repeating the input.
func FuzzTaskIDPath(f *testing.F) {
	for _, s := range []string{"0f3c2a9e-1b4d-4c8a-9e7f-6a5b4c3d2e10", "..", ".", "a/b", "a%2Fb", "%2e%2e", "a b", "", "tâche", "a?b#c", "A.b_c-d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := validateTaskID(id)
		if err != nil {
			// One of the fixed messages: they name the field and never repeat
			// the input.
			switch err.Error() {
			case "task_id must be 1 to 36 characters",
				"task_id may contain only letters, digits, '-', '_' and '.'",
				`task_id must not be "." or ".."`:
			default:
				t.Fatalf("unexpected message %q", err.Error())
			}
			return
		}
		if len(id) < 1 || len(id) > maxTaskIDLength || id == "." || id == ".." {
			t.Fatalf("accepted %q", id)
		}
		target := "https://sms.example.com/v3/tasks/" + url.PathEscape(id) + "/passphrase"
		u, perr := url.Parse(target)
		if perr != nil {
			t.Fatalf("accepted %q but the URL does not parse: %v", id, perr)
		}
		segs := strings.Split(u.Path, "/")
		if len(segs) != 5 || segs[3] != id || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("accepted %q but the upstream path is %q", id, u.Path)
		}
		if u.EscapedPath() != "/v3/tasks/"+id+"/passphrase" {
			t.Fatalf("accepted %q but it needed escaping: %q", id, u.EscapedPath())
		}
	})
}

// FuzzDecodeResponse feeds arbitrary answers to the decoder: it must never
// panic, accept only well-formed answers for the task asked, and build error
// messages that are bounded, printable and free of credentials.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, []byte(`{"task_id":"t1","passphrase":"p"}`), "req-1")
	f.Add(200, []byte(`{"task_id":"t2","passphrase":"p"}`), "")
	f.Add(200, []byte(`{"passphrase":null}`), "")
	f.Add(403, []byte(`{"error_code":"SMS.9004","error_msg":"no","encoded_authorization_message":"ENC"}`), "r")
	f.Add(401, []byte(`{"error":{"code":401,"title":"Unauthorized","message":"tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"}}`), "r")
	f.Add(500, []byte(`{"code":"X","message":"\u0000\u001b[31mred"}`), "a\nb")
	f.Add(429, []byte("not json"), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, requestID string) {
		if status < 100 || status > 999 {
			return
		}
		c := &smsClient{scrub: newScrubber([]string{testToken})}
		sent, _ := http.NewRequest("GET", "https://sms.example.com/", nil)
		sent.Header.Set("X-Auth-Token", "echoed-token-1234")
		ex := &exchange{status: status, header: http.Header{"X-Request-Id": {requestID}}, body: body, request: sent}
		if len(body) > maxPassphraseBody {
			ex.body, ex.tooLarge = nil, true
		}

		passphrase, err := c.decodePassphrase("t1", ex)
		if err == nil {
			if status != http.StatusOK || len(passphrase) > maxPassphraseLen {
				t.Fatalf("accepted status %d, passphrase of %d bytes", status, len(passphrase))
			}
			return
		}
		ue, ok := err.(*upstreamError)
		if !ok {
			t.Fatalf("error of type %T", err)
		}
		if ue.httpStatus() != http.StatusNotFound && ue.httpStatus() != http.StatusBadGateway {
			t.Fatalf("status %d maps to %d", status, ue.httpStatus())
		}
		msg := ue.Error()
		for _, secret := range []string{testToken, "echoed-token-1234"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("message leaks a credential: %q", msg)
			}
		}
		if strings.Contains(msg, "encoded_authorization_message") {
			t.Fatalf("message carries the encoded authorization message: %q", msg)
		}
		for _, part := range []string{ue.code, ue.message, ue.requestID} {
			if len(part) > maxUpstreamText+3 {
				t.Fatalf("unbounded upstream text (%d bytes)", len(part))
			}
			for _, r := range part {
				if unicode.IsControl(r) {
					t.Fatalf("control character in %q", part)
				}
			}
		}
		if !utf8.ValidString(ue.code+ue.message) && utf8.ValidString(string(body)) {
			t.Fatalf("sanitizing broke UTF-8: %q", ue.code+ue.message)
		}
	})
}

// FuzzSignatureMatchesTheVerifier signs arbitrary requests with the engine's
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
