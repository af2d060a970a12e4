package huawei

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// requireShowable fails if s holds a character a terminal would not show
// as itself: a control, a format character, a line or paragraph separator.
func requireShowable(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			t.Errorf("%s holds U+%04X: %q", what, r, s)
			return
		}
	}
}

// Issue 17, defect 8: an error answer whose error_code, error_msg and
// X-Request-Id hold bidi overrides, zero-width and other format characters,
// line separators and controls, from SMS or IAM, becomes an *Error whose
// every string shows each of them as U+FFFD (or a space, for line breaks).
func TestUpstreamErrorTextIsShowable(t *testing.T) {
	fake := smsfake.New(smsfake.Options{AccessKeys: map[string]string{testAccessKey: testSecretKey},
		Tasks: map[string]string{testTask: testPassphrase}})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodAccessKey, AccessKey: testAccessKey,
		SecretKey: testSecretKey, ProjectID: "p", Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer c.Close()

	for target, call := range map[string]func() error{
		"sms": func() error { _, err := c.Passphrase(context.Background(), testTask); return err },
		"iam": func() error { _, err := c.ListAccessKeys(context.Background(), "u1"); return err },
	} {
		require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultHiddenCharacters, Target: target, Times: 1}))
		err := call()
		var e *Error
		require.True(t, errors.As(err, &e), "%s: %v", target, err)
		for what, s := range map[string]string{"Code": e.Code, "Message": e.Message, "RequestID": e.RequestID, "Error()": e.Error()} {
			requireShowable(t, target+" "+what, s)
		}
		require.Contains(t, e.Message, "request refused\uFFFD", target)
		require.Contains(t, e.RequestID, "req\uFFFD", target)
		require.NotContains(t, e.Error(), `\u`, "%s: shown as U+FFFD, not as an escape", target)
	}
}

// What IAM says of an access key (listed in rotation errors and logs) is
// cleaned like every other upstream text.
func TestAccessKeyInfoIsShowable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"credentials":[{"access":"AK\u202eXYZ","user_id":"u1\u200b","status":"active\u2028",`+
			`"create_time":"2026\u00ad","description":"sms-vault\u2066 marker"}]}`)
	}))
	defer srv.Close()
	c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodAccessKey, AccessKey: testAccessKey,
		SecretKey: testSecretKey, ProjectID: "p", Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	keys, err := c.ListAccessKeys(context.Background(), "u1")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	k := keys[0]
	for what, s := range map[string]string{"access": k.Access, "user_id": k.UserID, "status": k.Status, "create_time": k.CreateTime, "description": k.Description} {
		requireShowable(t, what, s)
	}
	require.Equal(t, "AK\uFFFDXYZ", k.Access)
	require.Equal(t, "active", k.Status, "a line break at the end is trimmed")
}

// Printable shows every hidden character as U+FFFD, and line breaks and
// tabs as a space; invalid UTF-8 becomes U+FFFD too. Ordinary text, spaces
// and marks stay as they are.
func TestPrintable(t *testing.T) {
	for _, r := range smsfake.HiddenCharacters {
		if r < ' ' || r > '~' { // the rest of an ANSI escape is visible
			require.True(t, hidden(r), "U+%04X is hidden", r)
		}
	}
	for in, want := range map[string]string{
		"team-a-\u202eweb":          "team-a-\uFFFDweb",
		"a\u200bb\u200dc\ufeffd":    "a\uFFFDb\uFFFDc\uFFFDd",
		"tag\U000E0041\U000E007F":   "tag\uFFFD\uFFFD",
		"line1\nline2\u2028line3":   "line1 line2 line3",
		"\x1b[31mred\x00":           "\uFFFD[31mred\uFFFD",
		"READY\r\n":                 "READY",
		"bad\xffbyte":               "bad\uFFFDbyte",
		"caf\u00e9 \u4e2d\u6587 ok": "caf\u00e9 \u4e2d\u6587 ok",
		"e\u0301 \u00a0nbsp":        "e\u0301 \u00a0nbsp",
	} {
		require.Equal(t, want, Printable(in), "%q", in)
	}
	require.Equal(t, strings.Repeat("x", 300), Printable(strings.Repeat("x", 300)), "Printable does not bound")
}

// Redaction and cleaning use one list: a credential broken up by any hidden
// character is still redacted, and since redaction runs on the text as the
// upstream sent it, before cleaning replaces those characters, cleaning
// cannot leave a credential a reader could put back together.
func TestRedactionSkipsWhatCleaningReplaces(t *testing.T) {
	const tok = "tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
	r := newRedactor([]string{tok}, nil)
	for _, sep := range smsfake.HiddenCharacters {
		if !hidden(sep) {
			continue
		}
		out := r.clean("bad token " + strings.Join(strings.Split(tok, ""), string(sep)) + " end")
		require.Equal(t, "bad token <redacted> end", out, "U+%04X", sep)
	}
	// Every character cleaning replaces is one matching skips.
	for r := rune(0); r <= unicode.MaxRune; r++ {
		surrogate := r >= 0xD800 && r <= 0xDFFF // not a character: string(r) is U+FFFD
		if Printable(string(r)) != string(r) && !surrogate && !unicode.IsSpace(r) {
			require.True(t, skipped(r), "U+%04X is replaced but not skipped", r)
		}
	}
}

// Review of issue 17: what the engine refuses in passwords is what cleaning
// rewrites, from the same list, and U+FFFD, which it writes.
func TestHoldsHiddenIsWhatCleaningRewrites(t *testing.T) {
	for _, s := range []string{"Ab1\u200bcd2!", "Ab1\uFFFDcd2!", "Ab1\xffcd2!", "Ab1\u202ecd2!", "Ab1\x1bcd2!", "Ab1\u00adcd2!"} {
		require.True(t, HoldsHidden(s), "%q", s)
		require.Contains(t, Printable(s), "\uFFFD", "%q", s)
	}
	for _, s := range []string{"Ab1 cd2!", "Ab1-\u00e9\u4e2d-cd2!", "pw-0123456789"} {
		require.False(t, HoldsHidden(s), "%q", s)
		require.Equal(t, s, Printable(s), "%q", s)
	}
}

// Review of issue 17: what IAM says of a key is redacted too, listed or
// shown: an IAM quoting the secret key as a key id or description must not
// have it repeated in rotation errors and logs.
func TestAccessKeyInfoIsRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/v3.0/OS-CREDENTIAL/credentials/") {
			_, _ = io.WriteString(w, `{"credential":{"access":"`+testAccessKey+`","user_id":"u1","description":"`+testSecretKey+`"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"credentials":[{"access":"`+testSecretKey+`","user_id":"u1","description":"x `+testSecretKey[:10]+`"}]}`)
	}))
	defer srv.Close()
	c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodAccessKey, AccessKey: testAccessKey,
		SecretKey: testSecretKey, ProjectID: "p", Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	keys, err := c.ListAccessKeys(context.Background(), "u1")
	require.NoError(t, err)
	require.Equal(t, []AccessKeyInfo{{Access: redacted, UserID: "u1", Description: "x " + redacted}}, keys)
	info, err := c.ShowAccessKey(context.Background(), testAccessKey)
	require.NoError(t, err)
	require.Equal(t, AccessKeyInfo{Access: testAccessKey, UserID: "u1", Description: redacted}, *info)
}

// Review of issue 17: a passphrase reaches a team's terminal raw, so one
// holding a hidden character or bytes that are not UTF-8 is refused, and the
// refusal does not repeat it.
func TestPassphraseHoldingHiddenCharactersIsRefused(t *testing.T) {
	for _, pp := range []string{`pp-\u001b]0;owned\u0007-0123`, `pp-\u202eowned-0123`, "pp-\xffowned-0123", `pp-\ufffdowned`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"task_id":"t1","passphrase":"`+pp+`"}`)
		}))
		c, err := New(Options{Endpoint: srv.URL, Method: MethodToken, Token: "passphrase-test-token-0a1b", Timeout: 5 * time.Second})
		require.NoError(t, err)
		got, err := c.Passphrase(context.Background(), "t1")
		c.Close()
		srv.Close()
		require.Empty(t, got)
		var e *Error
		require.ErrorAs(t, err, &e, pp)
		require.Equal(t, KindBadResponse, e.Kind, pp)
		require.Contains(t, err.Error(), "answered with a passphrase holding a control, format or other hidden character", pp)
		require.NotContains(t, err.Error(), "owned", pp)
	}
}
