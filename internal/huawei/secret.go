package huawei

import "fmt"

// Secret holds a credential. Its String and GoString hide the value, so that
// a config or an Options printed by mistake (%v, %+v, %#v, a panic message)
// cannot leak it; code that needs the value converts explicitly with
// string(s).
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }
