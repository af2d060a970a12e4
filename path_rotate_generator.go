package sms

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// The engine's generator makes passwords of the most characters IAM
// allows, so that every account's minimum length is met.
const generatedPasswordLength = 32

// newPassword draws a new IAM password from the configured Vault password
// policy, or else from the engine's own generator.
func (b *backend) newPassword(ctx context.Context, cfg *smsConfig) (string, error) {
	if cfg.PasswordPolicy != "" {
		pw, err := b.System().GeneratePasswordFromPolicy(ctx, cfg.PasswordPolicy)
		if err != nil {
			return "", fmt.Errorf("password_policy %q: %w", cfg.PasswordPolicy, err)
		}
		if err := checkHuaweiPassword(pw, cfg.Username, string(cfg.Password)); err != "" {
			return "", fmt.Errorf("password_policy %q produced a password IAM would refuse: %s", cfg.PasswordPolicy, err)
		}
		return pw, nil
	}
	for {
		pw := generatePassword(generatedPasswordLength)
		if checkHuaweiPassword(pw, cfg.Username, string(cfg.Password)) == "" {
			return pw, nil
		}
	}
}

// Character classes of the engine's generator; the specials are ones no
// shell, JSON or URL quoting trips over.
const (
	upperChars   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	lowerChars   = "abcdefghijkmnopqrstuvwxyz"
	digitChars   = "23456789"
	specialChars = "!#%+,-.:=@^_~"
)

// generatePassword returns n characters from crypto/rand with at least one
// of each class, so that every account password policy (2 to 4 classes)
// accepts it, and no character twice in a row (policies can limit
// consecutive identical characters). Drawn uniformly and redrawn until both
// hold, which takes about two draws at 32 characters.
func generatePassword(n int) string {
	classes := []string{upperChars, lowerChars, digitChars, specialChars}
	all := strings.Join(classes, "")
	max := big.NewInt(int64(len(all)))
	out := make([]byte, n)
	for {
		for i := range out {
			j, err := rand.Int(rand.Reader, max)
			if err != nil {
				panic(err) // crypto/rand does not fail on supported platforms
			}
			out[i] = all[j.Int64()]
		}
		ok := true
		for i := 1; i < n && ok; i++ {
			ok = out[i] != out[i-1]
		}
		for _, set := range classes {
			ok = ok && strings.ContainsAny(string(out), set)
		}
		if ok {
			return string(out)
		}
	}
}

// checkHuaweiPassword applies IAM's rules (the reference's): 6 to 32
// characters, at least two classes, not the user name or it reversed, not
// the current password. It returns what is wrong, or "".
func checkHuaweiPassword(pw, username, current string) string {
	if len(pw) < 6 || len(pw) > 32 {
		return "IAM passwords are 6 to 32 characters"
	}
	if huawei.HoldsHidden(pw) {
		return "it holds a control, format or other hidden character, U+FFFD or bytes that are not UTF-8, which no IAM password holds"
	}
	var classes int
	for _, set := range []func(rune) bool{
		func(r rune) bool { return r >= 'A' && r <= 'Z' },
		func(r rune) bool { return r >= 'a' && r <= 'z' },
		func(r rune) bool { return r >= '0' && r <= '9' },
		func(r rune) bool { return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') },
	} {
		if strings.ContainsFunc(pw, set) {
			classes++
		}
	}
	if classes < 2 {
		return "IAM passwords mix at least two of upper-case, lower-case, digits and special characters"
	}
	lower, user := strings.ToLower(pw), strings.ToLower(username)
	if user != "" && (strings.Contains(lower, user) || strings.Contains(lower, reverse(user))) {
		return "IAM passwords must not contain the user name or the user name reversed"
	}
	if pw == current {
		return "IAM passwords must differ from the current one"
	}
	return ""
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}
