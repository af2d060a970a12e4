package sms

// Attack tests from the adversarial review of issue 17, defect 8: each
// fails on the change it reviews.

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The passphrase is text from SMS that the engine returns to a team's
// terminal (`vault read` prints it raw), yet it is checked only for length:
// an ANSI escape, a terminal title sequence, a bidi override or broken UTF-8
// from SMS reach the reader untouched. Cleaning would corrupt a secret; a
// passphrase holding a hidden character or invalid UTF-8 (never one SMS
// generates) can be refused with a 502 instead, as malformed answers are.
func TestAttackPassphraseWithHiddenCharactersReachesTheTerminal(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	for i, pp := range []string{"pp-\x1b]0;owned\x07-0123456789", "pp-\u202e9876543210", "pp-\xff\xfe-0123456789"} {
		env.fake.SetTask(testTask, pp)
		status, msg := env.del("passphrase/" + testTask)
		require.Equal(t, http.StatusNoContent, status, msg)
		resp, status, _ := env.readPassphrase(testTask)
		if status == http.StatusBadGateway {
			continue
		}
		require.Equal(t, http.StatusOK, status)
		if resp.Data["passphrase"] == pp {
			t.Errorf("case %d: served as SMS sent it", i)
		}
	}
}
