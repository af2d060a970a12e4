package main

import (
	"bytes"
	"strings"
	"testing"
)

// What cyclonedx-gomod v1.10.0 writes (CycloneDX 1.6 with the 1.4 tools
// array), shortened.
const legacy = `{
  "bomFormat": "CycloneDX",
  "metadata": {
    "tools": [
      {
        "vendor": "CycloneDX",
        "name": "cyclonedx-gomod",
        "hashes": [
          {
            "alg": "SHA-256",
            "content": "722cb6f619fba8a257d9c6118cc9e2aa00f1d8f055139e57b78a7bf180e12853"
          }
        ],
        "externalReferences": []
      }
    ],
    "component": {
      "purl": "pkg:golang/x@v1?goarch=amd64\u0026goos=linux",
      "hashes": [
        {
          "alg": "SHA-256",
          "content": "kept"
        }
      ]
    }
  },
  "components": [
    {
      "name": "std",
      "hashes": []
    }
  ]
}
`

func TestStripLegacyToolsArray(t *testing.T) {
	out, n, err := stripToolHashes([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("removed %d, want 1", n)
	}
	want := strings.Replace(legacy, `        "hashes": [
          {
            "alg": "SHA-256",
            "content": "722cb6f619fba8a257d9c6118cc9e2aa00f1d8f055139e57b78a7bf180e12853"
          }
        ],
`, "", 1)
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

func TestStripToolsComponents(t *testing.T) {
	in := `{
  "metadata": {
    "tools": {
      "components": [
        {
          "type": "application",
          "name": "cyclonedx-gomod",
          "hashes": [
            {
              "alg": "MD5",
              "content": "0a4486f95aac4242d7b44e5048df428e"
            }
          ]
        }
      ]
    }
  }
}
`
	out, n, err := stripToolHashes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "metadata": {
    "tools": {
      "components": [
        {
          "type": "application",
          "name": "cyclonedx-gomod"
        }
      ]
    }
  }
}
`
	if n != 1 || string(out) != want {
		t.Fatalf("removed %d, got\n%s", n, out)
	}
}

func TestNothingToStripLeavesTheDocument(t *testing.T) {
	in := "{\n  \"metadata\": {\n    \"tools\": []\n  }\n}\n"
	out, n, err := stripToolHashes([]byte(in))
	if err != nil || n != 0 || !bytes.Equal(out, []byte(in)) {
		t.Fatalf("n %d, err %v, out %q", n, err, out)
	}
}

func TestRefusesAnotherFormat(t *testing.T) {
	for _, in := range []string{
		`{"metadata":{"tools":[{"hashes":[]}]}}`,   // compact
		"{\n\t\"metadata\": {}\n}\n",               // tabs
		"{\n  \"metadata\": {}\n}",                 // no final newline
		"{\n  \"metadata\": {\n    \"tools\": [\n", // not JSON
	} {
		if _, _, err := stripToolHashes([]byte(in)); err == nil {
			t.Errorf("no error for %q", in)
		}
	}
}

func TestOutputArg(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bin", "-json", "-output", "a.cdx.json", "bin"}, "a.cdx.json"},
		{[]string{"bin", "--output=b.json", "bin"}, "b.json"},
		{[]string{"bin", "-output"}, ""},
		{[]string{"bin", "-json", "bin"}, ""},
	} {
		if got := outputArg(c.args); got != c.want {
			t.Errorf("outputArg(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}
