package huawei

import (
	"encoding/json"
	"unicode/utf8"
)

// UnmarshalJSON makes what IAM says of a key Printable as it is decoded:
// the engine repeats access key ids, owners and descriptions in rotation
// errors, warnings and logs.
func (a *AccessKeyInfo) UnmarshalJSON(b []byte) error {
	type plain AccessKeyInfo // without this method
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = AccessKeyInfo{Access: Printable(v.Access), UserID: Printable(v.UserID), Status: Printable(v.Status),
		CreateTime: Printable(v.CreateTime), Description: Printable(v.Description)}
	return nil
}

// HoldsHidden reports whether s is not UTF-8 or holds a character that
// cleaning rewrites (a hidden character, or U+FFFD). Redaction matches a
// credential without such characters and cleaning writes U+FFFD for each,
// so one holding them is protected only by what is left of it; and no one
// types them into IAM's console. The engine refuses passwords holding them,
// from its operators and from a password policy.
func HoldsHidden(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || hidden(r) {
			return true
		}
	}
	return false
}

// redactedBy returns what IAM says of a key with every credential the
// client knows taken out, as from any other upstream text: an IAM that
// quotes a secret as a key id or description must not have it repeated.
func (a AccessKeyInfo) redactedBy(r *redactor) AccessKeyInfo {
	return AccessKeyInfo{Access: r.clean(a.Access), UserID: r.clean(a.UserID), Status: r.clean(a.Status),
		CreateTime: r.clean(a.CreateTime), Description: r.clean(a.Description)}
}
