package huawei

import (
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

const (
	// maxUpstreamText bounds how much of an upstream-provided string is repeated.
	maxUpstreamText = 255
	// minFragment is the shortest run of a credential's characters that is
	// redacted wherever it appears: an upstream may quote a credential whole,
	// cut to its own field limit, or in pieces.
	minFragment = 8
	// minSecret is the shortest credential redacted at all: shorter ones
	// would garble ordinary text, and no real Huawei credential is that short.
	minSecret = 4
	redacted  = "<redacted>"
)

// redactor removes credentials from upstream text. It knows the configured
// secrets, and callers add what a request carried (tokens, signatures) and
// what the client holds (the current IAM token).
type redactor struct {
	static []string
	held   func() []string // credentials obtained at run time; may be nil

	mu    sync.Mutex
	grams map[string]map[string]struct{} // secret -> its minFragment-long substrings
}

func newRedactor(static []string, held func() []string) *redactor {
	return &redactor{static: static, held: held, grams: map[string]map[string]struct{}{}}
}

// clean makes upstream text fit for an error message or a log line: every
// known credential and every minFragment-long piece of one is replaced
// first, on the whole text as the upstream sent it, then the text is made
// Printable and cut to maxUpstreamText bytes. Redacting after cutting would
// let a prefix of a long credential through.
func (r *redactor) clean(s string, extra ...string) string {
	if r != nil && s != "" {
		secrets := append(append([]string(nil), r.static...), extra...)
		if r.held != nil {
			secrets = append(secrets, r.held()...)
		}
		s = r.redact(s, secrets)
	}
	return sanitize(s)
}

func (r *redactor) redact(s string, secrets []string) string {
	// Matching runs on a shadow of the text (see shadowOf), so that an
	// upstream that changes a credential's case or breaks it up with
	// invisible characters does not slip it through.
	shadow, pos := shadowOf(s)
	text := string(shadow)

	// mark[i] is true when byte i of s belongs to a credential or a piece of one.
	var mark []bool
	set := func(from, to int) { // shadow range [from, to)
		if mark == nil {
			mark = make([]bool, len(s))
		}
		for i := pos[from]; i <= pos[to-1]; i++ {
			mark[i] = true
		}
	}
	for _, secret := range withQuotedForms(secrets) {
		secret = normalize(secret)
		switch {
		case len(secret) < minSecret:
			continue
		case len(secret) < minFragment:
			for i := 0; ; {
				j := strings.Index(text[i:], secret)
				if j < 0 {
					break
				}
				set(i+j, i+j+len(secret))
				i += j + 1
			}
		default:
			grams := r.gramsOf(secret)
			for i := 0; i+minFragment <= len(text); i++ {
				if _, ok := grams[text[i:i+minFragment]]; ok {
					set(i, i+minFragment)
				}
			}
		}
	}
	if mark == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !mark[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(redacted)
		for i < len(s) && mark[i] {
			i++
		}
	}
	return b.String()
}

// hidden reports whether a terminal shows r as nothing, or lets it change
// how the text around it is shown: C0 and C1 controls (Cc: escapes, NUL,
// line breaks), format characters (Cf: bidi overrides, embeddings, isolates
// and marks, zero-width spaces and joiners, the word joiner and invisible
// operators, the byte order mark, the soft hyphen, tag characters...), line
// and paragraph separators (Zl, Zp), and the other code points Unicode
// marks default-ignorable (variation selectors, Hangul fillers, the
// combining grapheme joiner, and ranges reserved for more of them).
//
// It is the one list of such characters: Printable replaces them in what
// the engine shows, and redaction skips them when it looks for a
// credential, so that no credential broken up by them goes unseen, and
// cleaning (which runs after redaction, and never removes a character)
// cannot leave one behind. Redaction skips U+FFFD too (see skipped).
func hidden(r rune) bool {
	if r < utf8.RuneSelf {
		return r < ' ' || r == 0x7f
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// skipped are the characters matching ignores: the hidden ones, spaces,
// and U+FFFD, which cleaning writes for every hidden character and broken
// byte. Were U+FFFD matched, a credential quoted with U+FFFD (or a broken
// byte) in place of a hidden character, or the reverse, would slip past
// redaction and be rebuilt by cleaning; spread out with U+FFFD, it would be
// read back by anyone who drops them.
func skipped(r rune) bool {
	return hidden(r) || unicode.IsSpace(r) || r == utf8.RuneError
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// shadowOf is what matching sees of a text: the text without skipped
// characters (hidden ones, spaces, U+FFFD and broken bytes) and with ASCII
// letters lower-cased;
// pos maps each shadow byte back to the text.
func shadowOf(s string) (shadow []byte, pos []int) {
	shadow = make([]byte, 0, len(s))
	pos = make([]int, 0, len(s))
	for i, rn := range s {
		if skipped(rn) {
			continue
		}
		// The bytes the rune was decoded from: one for a broken byte, three
		// for a real U+FFFD.
		_, size := utf8.DecodeRuneInString(s[i:])
		for j := 0; j < size; j++ {
			shadow = append(shadow, lowerASCII(s[i+j]))
			pos = append(pos, i+j)
		}
	}
	return shadow, pos
}

// normalize is what matching sees of a credential.
func normalize(secret string) string {
	shadow, _ := shadowOf(secret)
	return string(shadow)
}

// withQuotedForms adds, for each credential with characters Go escapes when
// it quotes (net/http's errors use %q), the escaped form.
func withQuotedForms(secrets []string) []string {
	out := secrets
	for _, s := range secrets {
		if q := strconv.Quote(s); q[1:len(q)-1] != s {
			out = append(out, q[1:len(q)-1])
		}
	}
	return out
}

// gramsOf returns the set of minFragment-long substrings of secret, built
// once per secret: an IAM token of several KB has thousands.
func (r *redactor) gramsOf(secret string) map[string]struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.grams[secret]; ok {
		return g
	}
	if len(r.grams) > 32 {
		clear(r.grams) // tokens come and go; keep the memory bounded
	}
	g := make(map[string]struct{}, len(secret))
	for i := 0; i+minFragment <= len(secret); i++ {
		g[secret[i:i+minFragment]] = struct{}{}
	}
	r.grams[secret] = g
	return g
}

// Printable returns text an upstream chose (SMS's task names and states,
// error texts) as the engine shows it: every hidden character becomes a
// space when it breaks lines or words (tab, newline, U+2028...) and U+FFFD
// otherwise, so that a reader sees that something was there but a terminal
// cannot be steered by it; invalid UTF-8 becomes U+FFFD; white space at the
// ends is trimmed. A credential in text must be redacted before (see
// redactor.clean).
func Printable(s string) string {
	clean := utf8.ValidString(s)
	for i := 0; clean && i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		clean = !hidden(r)
		i += size
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			switch {
			case !hidden(r):
				return r // strings.Map makes invalid bytes U+FFFD
			case unicode.IsSpace(r):
				return ' '
			default:
				return utf8.RuneError
			}
		}, s)
	}
	return strings.TrimSpace(s)
}

// sanitize makes text Printable and bounds its length, cutting at a rune
// boundary.
func sanitize(s string) string {
	s = Printable(s)
	if len(s) > maxUpstreamText {
		cut := maxUpstreamText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
