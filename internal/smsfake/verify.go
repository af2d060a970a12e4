package smsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// maxClockSkew is how far X-Sdk-Date may be from the gateway's clock.
const maxClockSkew = 15 * time.Minute

// verifySignature checks an SDK-HMAC-SHA256 Authorization header the way the
// API gateway does: it recomputes the signature over exactly the headers named
// in SignedHeaders, with the values the request carries. It returns the
// SignedHeaders list.
func (s *Server) verifySignature(r *http.Request) (string, error) {
	signed, _, err := s.verifySignatureAs(r)
	return signed, err
}

// verifySignatureAs is verifySignature that also returns the user who owns
// the access key, looked up in the access-key store (permanent keys) or
// among the temporary keys.
func (s *Server) verifySignatureAs(r *http.Request) (string, userRef, error) {
	access, signedHeaders, signature, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "", userRef{}, err
	}
	secretKey, owner, err := s.lookupKey(access)
	if err != nil {
		return "", userRef{}, err
	}
	signed, err := s.checkSignature(r, access, signedHeaders, signature, secretKey)
	if err != nil {
		return "", userRef{}, err
	}
	return signed, owner, nil
}

// checkSignature checks the date, the security token and the signature of
// a request whose access key exists.
func (s *Server) checkSignature(r *http.Request, access, signedHeaders, signature, secretKey string) (string, error) {
	date := r.Header.Get("X-Sdk-Date")
	signedAt, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return "", errors.New("X-Sdk-Date is missing or malformed")
	}
	if skew := s.now().Sub(signedAt); skew > maxClockSkew || skew < -maxClockSkew {
		return "", errors.New("X-Sdk-Date is more than 15 minutes off")
	}

	names := strings.Split(signedHeaders, ";")
	if !contains(names, "x-sdk-date") {
		return "", errors.New("x-sdk-date is not signed")
	}
	s.mu.Lock()
	temp, temporary := s.tempKeys[access]
	s.mu.Unlock()
	if temporary {
		if r.Header.Get("X-Security-Token") != temp.token || !contains(names, "x-security-token") {
			return "", errors.New("the security token is missing, wrong or unsigned")
		}
		if !temp.expires.IsZero() && !s.now().Before(temp.expires) {
			return "", errors.New("the security token expired")
		}
	}

	body := bodyOf(r)
	expected := Signature(r.Method, r.URL.Path, r.URL.Query(), func(name string) string {
		if name == "host" {
			return r.Host
		}
		return r.Header.Get(name)
	}, names, body, date, secretKey)
	if !hmac.Equal([]byte(expected), []byte(signature)) {
		return "", errors.New("verify aksk signature fail")
	}
	return signedHeaders, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseAuthorization splits
// "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (access, signedHeaders, signature string, err error) {
	rest, ok := strings.CutPrefix(h, "SDK-HMAC-SHA256 ")
	if !ok {
		return "", "", "", errors.New("the Authorization header does not use SDK-HMAC-SHA256")
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "Access":
			access = v
		case "SignedHeaders":
			signedHeaders = v
		case "Signature":
			signature = v
		}
	}
	if access == "" || signedHeaders == "" || signature == "" {
		return "", "", "", errors.New("the Authorization header lacks Access, SignedHeaders or Signature")
	}
	return access, signedHeaders, signature, nil
}

// Signature computes the hex signature of a request. header returns the value
// of a lower-cased header name. Exported so that the stand-in's own tests can
// check it against the official SDK's vectors.
func Signature(method, path string, query url.Values, header func(string) string, signedHeaders []string,
	body []byte, date, secretKey string) string {
	var canon strings.Builder
	canon.WriteString(method + "\n")

	// URI: every segment encoded, always ending in "/".
	segs := strings.Split(path, "/")
	for i := range segs {
		segs[i] = encode(segs[i])
	}
	uri := strings.Join(segs, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	canon.WriteString(uri + "\n")

	// Query: sorted by key, then by value.
	type kv struct{ k, v string }
	var params []kv
	for k, vs := range query {
		for _, v := range vs {
			params = append(params, kv{k, v})
		}
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	pairs := make([]string, len(params))
	for i, p := range params {
		pairs[i] = encode(p.k) + "=" + encode(p.v)
	}
	canon.WriteString(strings.Join(pairs, "&") + "\n")

	for _, name := range signedHeaders {
		canon.WriteString(name + ":" + strings.TrimSpace(header(name)) + "\n")
	}
	canon.WriteString("\n" + strings.Join(signedHeaders, ";") + "\n")
	bodySum := sha256.Sum256(body)
	canon.WriteString(hex.EncodeToString(bodySum[:]))

	canonSum := sha256.Sum256([]byte(canon.String()))
	toSign := fmt.Sprintf("SDK-HMAC-SHA256\n%s\n%x", date, canonSum)
	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte(toSign))
	return hex.EncodeToString(mac.Sum(nil))
}

var unreserved [256]bool

func init() {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-~.") {
		unreserved[c] = true
	}
}

func encode(s string) string {
	var out strings.Builder
	for _, c := range []byte(s) {
		if unreserved[c] {
			out.WriteByte(c)
		} else {
			fmt.Fprintf(&out, "%%%02X", c)
		}
	}
	return out.String()
}
