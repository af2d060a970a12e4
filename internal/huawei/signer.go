package huawei

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Huawei Cloud's API gateway signature (SDK-HMAC-SHA256), written from the
// description in the reference and checked against the official SDK's test
// vectors. The official SDK is not imported: it is a 250 MB module.
const (
	signAlgorithm   = "SDK-HMAC-SHA256"
	sdkDateHeader   = "X-Sdk-Date"
	sdkDateFormat   = "20060102T150405Z"
	emptyBodySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// akskSigner signs every request with an access key pair.
type akskSigner struct {
	accessKey     string
	secretKey     Secret
	securityToken Secret // temporary credentials only
	projectID     string
	domainID      string
	now           func() time.Time
}

func (s *akskSigner) authorize(_ context.Context, req *http.Request) error {
	req.Header.Set(sdkDateHeader, s.now().UTC().Format(sdkDateFormat))
	if s.projectID != "" {
		req.Header.Set("X-Project-Id", s.projectID)
	}
	if s.domainID != "" {
		req.Header.Set("X-Domain-Id", s.domainID)
	}
	if s.securityToken != "" {
		req.Header.Set("X-Security-Token", string(s.securityToken))
	}
	// Go sends req.Host (or the URL's host) as the Host header; sign exactly that.
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	body, err := requestBody(req)
	if err != nil {
		return &Error{Kind: KindInternal, Service: "SMS", Detail: "the request body could not be read for signing"}
	}
	req.Header.Set("Authorization", signRequest(req.Method, req.URL, host, req.Header, body, s.accessKey, string(s.secretKey)))
	return nil
}

// requestBody returns a request's body for its payload hash, leaving the
// request able to send it.
func requestBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		// A fresh copy of the body, read to the end: closing it releases
		// nothing that could fail.
		defer func() { _ = rc.Close() }()
		return io.ReadAll(rc)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// signRequest returns the Authorization header value for a request. host, when
// not empty, is signed as the "host" header; headers must already hold
// X-Sdk-Date. It is a pure function so the SDK's vectors can test it directly.
func signRequest(method string, u *url.URL, host string, headers http.Header, body []byte, accessKey, secretKey string) string {
	names, canonicalHeaders := canonicalHeaders(host, headers)
	signed := strings.Join(names, ";")

	payloadHash := emptyBodySHA256
	if len(body) > 0 {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	}
	canonical := strings.Join([]string{
		method,
		canonicalURI(u.Path),
		canonicalQuery(u.Query()),
		canonicalHeaders,
		signed,
		payloadHash,
	}, "\n")

	requestHash := sha256.Sum256([]byte(canonical))
	stringToSign := signAlgorithm + "\n" + headers.Get(sdkDateHeader) + "\n" + hex.EncodeToString(requestHash[:])

	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte(stringToSign))
	return signAlgorithm + " Access=" + accessKey + ", SignedHeaders=" + signed +
		", Signature=" + hex.EncodeToString(mac.Sum(nil))
}

// canonicalHeaders follows the SDK: every header name lower-cased, except
// content-type and names containing "_" (which proxies may drop), sorted; each
// "name:trimmed value" line ends with "\n".
func canonicalHeaders(host string, headers http.Header) ([]string, string) {
	values := make(map[string]string, len(headers)+1)
	for name, vs := range headers {
		lower := strings.ToLower(name)
		if lower == "content-type" || lower == "authorization" || strings.Contains(lower, "_") || len(vs) == 0 {
			continue
		}
		values[lower] = strings.TrimSpace(vs[0])
	}
	if host != "" {
		values["host"] = host
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(values[name])
		b.WriteByte('\n')
	}
	return names, b.String()
}

// canonicalURI encodes each path segment and ends the path with "/".
func canonicalURI(path string) string {
	segments := strings.Split(path, "/")
	for i, seg := range segments {
		segments[i] = sdkEscape(seg)
	}
	uri := strings.Join(segments, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri
}

// canonicalQuery sorts keys, and the values of a repeated key, then encodes both.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			parts = append(parts, sdkEscape(k)+"="+sdkEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// sdkEscape keeps A-Z a-z 0-9 _ - ~ . and writes every other byte as upper-case
// %XX. url.PathEscape differs (it keeps sub-delimiters such as "=" and "!").
func sdkEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	return b.String()
}

// signatureOf returns the signature of an Authorization header value, the
// part that proves the secret key and must never be shown.
func signatureOf(authorization string) string {
	_, sig, ok := strings.Cut(authorization, "Signature=")
	if !ok {
		return ""
	}
	sig, _, _ = strings.Cut(sig, ",")
	return strings.TrimSpace(sig)
}
