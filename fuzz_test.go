package sms

import (
	"net/url"
	"strings"
	"testing"
)

// Fuzz targets; the seed corpus lives in testdata/fuzz/<target>/. CI runs each
// for a few seconds (make fuzz-ci); longer runs: make fuzz FUZZTIME=10m.

// FuzzTaskIDPath checks that whatever passes validation lands in exactly one
// path segment of the upstream URL, unchanged, and that whatever fails it gets
// an error naming task_id without repeating the input.
func FuzzTaskIDPath(f *testing.F) {
	for _, s := range []string{"0f3c2a9e-1b4d-4c8a-9e7f-6a5b4c3d2e10", "..", ".", "a/b", "a%2Fb", "%2e%2e", "a b", "", "tâche", "a?b#c", "A.b_c-d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := validateTaskID(id)
		if err != nil {
			// One of the fixed messages: they name the field and never repeat
			// the input.
			switch err.Error() {
			case "task_id must be 1 to 36 characters",
				"task_id may contain only letters, digits, '-', '_' and '.'",
				`task_id must not be "." or ".."`:
			default:
				t.Fatalf("unexpected message %q", err.Error())
			}
			return
		}
		if len(id) < 1 || len(id) > maxTaskIDLength || id == "." || id == ".." {
			t.Fatalf("accepted %q", id)
		}
		target := "https://sms.example.com/v3/tasks/" + url.PathEscape(id) + "/passphrase"
		u, perr := url.Parse(target)
		if perr != nil {
			t.Fatalf("accepted %q but the URL does not parse: %v", id, perr)
		}
		segs := strings.Split(u.Path, "/")
		if len(segs) != 5 || segs[3] != id || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("accepted %q but the upstream path is %q", id, u.Path)
		}
		if u.EscapedPath() != "/v3/tasks/"+id+"/passphrase" {
			t.Fatalf("accepted %q but it needed escaping: %q", id, u.EscapedPath())
		}
	})
}
