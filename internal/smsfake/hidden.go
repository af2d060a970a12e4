package smsfake

import (
	"net/http"
	"strings"
)

// HiddenCharacters are characters a terminal shows as nothing, or that
// change how the text around them is shown: bidi overrides, embeddings,
// isolates and marks, zero-width spaces and joiners, the word joiner and
// invisible operators, a byte order mark, a soft hyphen, the Arabic letter
// mark, the Mongolian vowel separator, tag characters, a variation
// selector, a Hangul filler, line and paragraph separators, and C0 and C1
// controls (an ANSI colour escape among them). A hostile or broken upstream
// may put them in any text it returns.
const HiddenCharacters = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f" +
	"\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u061c\u180e\U000e0001\U000e0041\U000e007f\ufe0f\u3164" +
	"\u2028\u2029\x1b[31m\x00\x07\u0085\u009b"

// hiddenHeader is HiddenCharacters without the ASCII controls, which HTTP
// clients refuse in a header.
const hiddenHeader = "\u202e\u200b\u200f\u2066\ufeff\u061c\u180e\U000e0041\u2028\u2029\u0085"

// hiddenCharactersError is an error answer with HiddenCharacters in every
// text the engine may repeat, and the request's credentials spread out by
// them.
func hiddenCharactersError(r *http.Request, status int, errorFor func(status int, code, msg string) reply) reply {
	if status == 0 {
		status = http.StatusBadRequest
	}
	seps := []rune(hiddenHeader)
	var spread []string
	for _, cred := range echoed(r, 0) {
		var b strings.Builder
		for i, c := range cred {
			if i > 0 {
				b.WriteRune(seps[i%len(seps)])
			}
			b.WriteRune(c)
		}
		spread = append(spread, b.String())
	}
	rep := errorFor(status, "SMS."+HiddenCharacters+"0400",
		"request refused"+HiddenCharacters+"by policy for "+strings.Join(spread, " and "))
	rep.header = rep.header.Clone()
	rep.header.Set("X-Request-Id", "req"+hiddenHeader+"id")
	return rep
}
