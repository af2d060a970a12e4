// Command cyclonedx-reproducible runs cyclonedx-gomod (the one installed next
// to it) with its own arguments, then removes from the SBOM it wrote (the
// file named by -output) the hashes cyclonedx-gomod records of its own
// executable: metadata.tools[].hashes, or metadata.tools.components[].hashes
// in the CycloneDX 1.5+ form. Those hashes describe the machine that built
// the tool (its architecture, GOAMD64, Go version), not the binary the SBOM
// is about, and would make SBOMs, and so SHA256SUMS, differ between machines.
// The rest of the document is left byte for byte as cyclonedx-gomod wrote it
// (the program checks that it can reproduce that formatting, and fails if
// it cannot).
//
// .goreleaser.yaml runs it as the SBOM command; scripts/goreleaser.sh builds
// it into .cache/bin with GoReleaser and cyclonedx-gomod.
//
//	cyclonedx-reproducible bin -json ... -output FILE BINARY
//	cyclonedx-reproducible -strip FILE...   (only the second step)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cyclonedx-reproducible:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "-strip" {
		for _, f := range args[1:] {
			if err := stripFile(f); err != nil {
				return err
			}
		}
		return nil
	}
	output := outputArg(args)
	if output == "" {
		return errors.New("no -output FILE among the arguments: nothing to make reproducible")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The cyclonedx-gomod built with this program, not whichever is first on
	// PATH.
	tool := filepath.Join(filepath.Dir(self), "cyclonedx-gomod")
	cmd := exec.CommandContext(context.Background(), tool, args...) //nolint:gosec // G204: runs the SBOM tool with GoReleaser's arguments, which is its job
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", tool, err)
	}
	return stripFile(output)
}

// outputArg returns the value of -output (or --output, -output=FILE) in a
// cyclonedx-gomod command line.
func outputArg(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if name != "-output" && name != "output" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func stripFile(path string) error {
	in, err := os.ReadFile(path) //nolint:gosec // G304: the SBOM file GoReleaser named
	if err != nil {
		return err
	}
	out, n, err := stripToolHashes(in)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n == 0 {
		return nil
	}
	// The file exists: WriteFile keeps its permissions.
	return os.WriteFile(path, out, 0o644) //nolint:gosec // G306, G703: the SBOM file GoReleaser named, published as it is
}

// The indentation cyclonedx-gomod (cyclonedx-go's JSON encoder) writes.
const indent = "  "

// stripToolHashes removes the "hashes" of every tool in metadata.tools and
// returns the document in the same format, with the number removed.
func stripToolHashes(in []byte) ([]byte, int, error) {
	// Make sure re-encoding reproduces the input: then the only change in the
	// output is the removed hashes.
	var compact bytes.Buffer
	if err := json.Compact(&compact, in); err != nil {
		return nil, 0, fmt.Errorf("not JSON: %w", err)
	}
	if again := format(compact.Bytes()); !bytes.Equal(again, in) {
		return nil, 0, errors.New("not in the format cyclonedx-gomod writes (two-space indentation, final newline): refusing to rewrite it")
	}

	doc, err := parseObject(compact.Bytes())
	if err != nil {
		return nil, 0, err
	}
	removed := 0
	err = doc.edit("metadata", func(metadata object) (json.RawMessage, error) {
		err := metadata.editRaw("tools", func(tools json.RawMessage) (json.RawMessage, error) {
			// CycloneDX 1.4 (deprecated since 1.5): an array of tools.
			if bytes.HasPrefix(tools, []byte("[")) {
				return withoutHashes(tools, &removed)
			}
			// 1.5 and later: {"components": [...], "services": [...]}.
			t, err := parseObject(tools)
			if err != nil {
				return nil, fmt.Errorf("metadata.tools: %w", err)
			}
			for _, key := range []string{"components", "services"} {
				if err := t.editRaw(key, func(list json.RawMessage) (json.RawMessage, error) {
					return withoutHashes(list, &removed)
				}); err != nil {
					return nil, err
				}
			}
			return t.encode(), nil
		})
		return metadata.encode(), err
	})
	if err != nil {
		return nil, 0, err
	}
	return format(doc.encode()), removed, nil
}

// withoutHashes removes the "hashes" member of every object in a JSON array.
func withoutHashes(list json.RawMessage, removed *int) (json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, fmt.Errorf("metadata.tools: %w", err)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, item := range items {
		o, err := parseObject(item)
		if err != nil {
			return nil, fmt.Errorf("metadata.tools: %w", err)
		}
		if o.remove("hashes") {
			*removed++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(o.encode())
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func format(compact []byte) []byte {
	var b bytes.Buffer
	_ = json.Indent(&b, compact, "", indent) // valid JSON: it came from json.Compact
	b.WriteByte('\n')
	return b.Bytes()
}

// object is a JSON object with its members in their order, each value as
// compact JSON text.
type object []member

type member struct {
	key   string
	value json.RawMessage
}

func parseObject(raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("expected a JSON object, got %.20q", raw)
	}
	var o object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // an object's member names are strings
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		o = append(o, member{key, value})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return o, nil
}

func (o object) encode() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(m.key) // a string always marshals
		b.Write(key)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (o *object) remove(key string) bool {
	for i, m := range *o {
		if m.key == key {
			*o = append((*o)[:i], (*o)[i+1:]...)
			return true
		}
	}
	return false
}

// editRaw replaces the value of key, if present, with what f returns.
func (o object) editRaw(key string, f func(json.RawMessage) (json.RawMessage, error)) error {
	for i, m := range o {
		if m.key == key {
			v, err := f(m.value)
			if err != nil {
				return err
			}
			o[i].value = v
		}
	}
	return nil
}

// edit is editRaw for a value that is an object.
func (o object) edit(key string, f func(object) (json.RawMessage, error)) error {
	return o.editRaw(key, func(raw json.RawMessage) (json.RawMessage, error) {
		inner, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return f(inner)
	})
}
