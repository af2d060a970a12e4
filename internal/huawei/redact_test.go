package huawei

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestSanitizeBoundsAndCleansUpstreamText(t *testing.T) {
	r := newRedactor([]string{"tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e", "abc"}, nil) // "abc" is too short to redact
	got := r.clean("line1\nline2\x1b[31m tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e abc")
	require.Equal(t, "line1 line2\uFFFD[31m <redacted> abc", got, "a line break is a space, an escape U+FFFD")

	// Cut at a rune boundary, never inside a multi-byte character.
	got = sanitize(strings.Repeat("é", 200)) // 400 bytes
	require.True(t, utf8.ValidString(got))
	require.LessOrEqual(t, len(got), maxUpstreamText+3)
	require.True(t, strings.HasSuffix(got, "..."))
}

func TestRedactionComesBeforeTruncationAndCatchesPieces(t *testing.T) {
	token := "MII" + strings.Repeat("a1b2c3d4e5f6g7h8", 256) // 4 KB
	r := newRedactor(nil, func() []string { return []string{token} })

	// Quoted whole, at the end of a long text: truncating first would leave a prefix.
	require.Equal(t, "token <redacted> expired", r.clean("token "+token+" expired"))
	// Cut by the upstream to its own field limit.
	require.Equal(t, "token <redacted>", r.clean("token "+token[:200]))
	// A piece from the middle, and the last characters.
	require.Equal(t, "x <redacted> y <redacted>", r.clean("x "+token[1000:1030]+" y "+token[len(token)-9:]))
	// Pieces shorter than minFragment are ordinary text.
	require.Equal(t, "a1b2c3d", r.clean("a1b2c3d"))
}

func TestRedactionOfShortSecretsIsExact(t *testing.T) {
	r := newRedactor([]string{"pw-1"}, nil)
	require.Equal(t, "<redacted> and <redacted>pw-", r.clean("pw-1 and pw-1pw-"))
}

func TestSignatureOf(t *testing.T) {
	require.Equal(t, "abc123", signatureOf("SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature=abc123"))
	require.Equal(t, "", signatureOf("Bearer x"))
}

// An upstream that changes a credential's case, breaks it up with control,
// zero-width or space characters, or quotes it with Go's %q does not slip it
// through.
func TestRedactionSeesThroughCaseAndInvisibleCharacters(t *testing.T) {
	const tok = "tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
	const pw = `pw"with\quotes-0123`
	r := newRedactor([]string{tok, pw, "pw-123"}, nil)
	broken := func(sep string) string {
		var b strings.Builder
		for i := 0; i < len(tok); i += 5 {
			b.WriteString(tok[i:min(i+5, len(tok))] + sep)
		}
		return b.String()
	}
	for name, in := range map[string]string{
		"upper case":    "bad token " + strings.ToUpper(tok),
		"zero-width":    "bad token " + broken("\u200b"),
		"control":       "bad token " + broken("\x01"),
		"spaces":        "bad token " + broken(" "),
		"go-quoted":     `malformed HTTP status code "` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `"`, `\"`) + `"`,
		"short, exact":  "bad password PW-123.",
		"short, spaced": "bad password pw-1 23.",
	} {
		out := r.clean(in)
		require.Contains(t, out, redacted, name)
		for i := 0; i+6 <= len(tok); i++ {
			require.NotContains(t, strings.ToLower(strings.ReplaceAll(out, " ", "")), tok[i:i+6], name)
		}
	}
	// Ordinary text stays readable.
	require.Equal(t, "line1 line2 ok", r.clean("line1\nline2 ok"))
}

// A credential with a U+FFFD in it (valid UTF-8, three bytes) is matched
// without it, like a hidden character: its other characters are redacted and
// the U+FFFD at its end is left whole, never cut into broken bytes (matching
// once took it for one byte of broken UTF-8 and left two bytes standing).
func TestRedactionCoversReplacementCharactersWhole(t *testing.T) {
	r := newRedactor([]string{"pw-0123456789\uFFFD", "\uFFFDpw-abcdefghij"}, nil)
	require.Equal(t, "bad password <redacted>\uFFFD.", r.clean("bad password pw-0123456789\uFFFD."))
	require.Equal(t, "bad password \uFFFD<redacted>.", r.clean("bad password \uFFFDpw-abcdefghij."))
	// In the middle of one, and spread out with U+FFFD or broken bytes.
	r = newRedactor([]string{"pw-0123\uFFFD4567"}, nil)
	for _, in := range []string{"pw-0123\uFFFD4567", "pw-0123\u202e4567", "pw-0123\xff4567", "p\uFFFDw\xff-\uFFFD0123\uFFFD4567"} {
		out := r.clean("bad password " + in + ".")
		require.Equal(t, "bad password <redacted>.", out, "%q", in)
	}
}

// Whatever surrounds a credential, and whatever characters it holds, the
// cleaned text neither contains it nor is left with pieces of a character
// the mark cut through, nor holds a hidden character. Spread out with a
// hidden character between each of its characters, it is redacted all the
// same, as it is with U+FFFD or a broken byte between its characters:
// cleaning shows each as U+FFFD or a space, and a reader who drops those must
// not find the credential.
func FuzzRedactionLeavesNoCredential(f *testing.F) {
	f.Add("bad password ", "pw-0123456789\uFFFD", ".", "\u200b")
	f.Add("x", "tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e", "y", "\u202e")
	f.Add("\u00e9", "\u00e9\u4e2d\u6587-secret-\U0001F600", "\u200b", "\U000e0041")
	f.Add("", "abcd", "abcd", "\u2028")
	f.Add("\x1b[31m", "pw-\u00ad-0123", "\u2029", "\ufe0f")
	f.Add("bad token ", "tok-0123456789", ".", "\uFFFD")
	f.Add("bad token ", "tok-0123456789", ".", "\xff")
	f.Fuzz(func(t *testing.T, before, secret, after, sep string) {
		if !utf8.ValidString(before+secret+after) || strings.ContainsAny(secret, "<>") {
			return // a secret that spells the marker would be found in it
		}
		for _, rn := range secret {
			if skipped(rn) {
				return // such a credential is matched without those characters
			}
		}
		if len(secret) < minSecret {
			return
		}
		r := newRedactor([]string{secret}, nil)
		out := r.clean(before + secret + after)
		if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) {
			t.Fatalf("the credential is still in the text (%d bytes out)", len(out))
		}
		if !utf8.ValidString(out) {
			t.Fatalf("the mark cut a character: %q", out)
		}
		for _, rn := range out {
			if hidden(rn) {
				t.Fatalf("U+%04X left in the text", rn)
			}
		}

		sr, size := utf8.DecodeRuneInString(sep)
		if !hidden(sr) && sr != utf8.RuneError || size != len(sep) || strings.ContainsRune(before+secret+after, utf8.RuneError) {
			return // the reader below drops every U+FFFD: keep real ones out
		}
		spread := strings.Join(strings.Split(secret, ""), sep)
		out = r.clean(before + spread + after)
		// A reader folds case as matching does: ASCII only.
		fold := func(rn rune) rune {
			if 'A' <= rn && rn <= 'Z' {
				return rn + 'a' - 'A'
			}
			return rn
		}
		read := strings.Map(func(rn rune) rune {
			if rn == utf8.RuneError || unicode.IsSpace(rn) {
				return -1
			}
			return fold(rn)
		}, out)
		if strings.Contains(read, strings.Map(fold, secret)) {
			t.Fatalf("the spread-out credential can be read back from the text (%d bytes out)", len(out))
		}
	})
}
