package huawei

// Attack tests from the adversarial review of issue 17, defect 8 (hidden
// characters): each fails on the change it reviews.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Cleaning turns every hidden character and every broken byte into U+FFFD
// after redaction, and matching skips hidden characters but not U+FFFD: the
// two lists disagree about U+FFFD. A credential holding U+FFFD (a Vault
// password_policy may produce one: checkHuaweiPassword does not look at the
// characters) that an upstream quotes with a hidden character or a broken
// byte in its place is not matched, and cleaning writes U+FFFD there: the
// credential comes out byte for byte. The mirror case: one holding a hidden
// character (sms/config accepts U+200B in a password: checkPrintable refuses
// only controls and U+FFFD) quoted with U+FFFD or a broken byte in its place
// comes out whole but for that character. In a long credential the same
// leaves a piece of minFragment characters in the text. FuzzRedactionLeaves
// NoCredential skips every credential holding U+FFFD, so it cannot see this.
func TestAttackCleaningReassemblesACredentialAroundUFFFD(t *testing.T) {
	for n, tc := range []struct{ secret, echoed string }{
		{"Ab1\uFFFDcd2!", "Ab1\u202ecd2!"},
		{"Ab1\uFFFDcd2!", "Ab1\xffcd2!"},
		{"Ab1\u200bcd2!", "Ab1\uFFFDcd2!"},
		{"Ab1\u200bcd2!", "Ab1\xffcd2!"},
		{"pw-0123\uFFFD4567-abcd", "pw-0123\u202e4567-abcd"},
		{"pw-0123\u200b4567-abcd", "pw-0123\xff4567-abcd"},
	} {
		num := n + 1
		out := newRedactor([]string{tc.secret}, nil).clean("refused password " + tc.echoed + " end")
		// What a reader of the cleaned text sees of the credential: the
		// secret with any hidden character shown as cleaning shows it.
		seen := []rune(Printable(tc.secret))
		if len(seen) > minFragment {
			for i := 0; i+minFragment <= len(seen); i++ {
				if piece := string(seen[i : i+minFragment]); strings.Contains(out, piece) {
					t.Errorf("case %d: %d characters of the secret in a row in the cleaned text", num, minFragment)
					break
				}
			}
		} else if strings.Contains(out, string(seen)) {
			t.Errorf("case %d: the cleaned text holds the secret whole", num)
		}
	}
}

// The same disagreement, for any credential: spread out with U+FFFD (sent
// as such, or as bytes that are not UTF-8, which encoding/json and cleaning
// both turn into U+FFFD) instead of a hidden character, it is not matched,
// and the error shows it with U+FFFD between its characters: a reader who
// drops them, as FuzzRedactionLeavesNoCredential's reader does for hidden
// characters, reads the IAM token or secret whole. The fuzz target leaves
// separators that are not hidden characters out, so it cannot see this.
func TestAttackCredentialSpreadOutWithUFFFDIsNotRedacted(t *testing.T) {
	const token = "certkey-test-token-0a1b2c"
	for num, sep := range []string{`\ufffd`, "\xff", `\u200b\ufffd`} {
		var spread []string
		for _, c := range token {
			spread = append(spread, string(c))
		}
		body := `{"error_code":"SMS.9999","error_msg":"bad token ` + strings.Join(spread, sep) + `"}`
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, body)
		}))
		c, err := New(Options{Endpoint: srv.URL, Method: MethodToken, Token: token, Timeout: 5 * time.Second})
		require.NoError(t, err)
		_, err = c.Passphrase(context.Background(), "t1")
		c.Close()
		srv.Close()
		require.Error(t, err)
		if strings.Contains(strings.ReplaceAll(err.Error(), "\uFFFD", ""), token) {
			t.Errorf("case %d: the token, spread out with U+FFFD, is in the error once U+FFFD is dropped", num+1)
		}
	}
}
