//go:build integration

package integration

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README's "Install into an existing Vault", done with a release snapshot
// of this tree: check the archive against SHA256SUMS, unpack it, copy the
// binary into the plugin directory, register it with the binary's checksum
// taken from SHA256SUMS (never computed here) and the version the binary
// prints with -version, enable it, configure it and read a passphrase.
//
// The snapshot is built with the pinned GoReleaser into a temporary dist
// directory (the repository's dist/ is left alone), for the host platform
// and one other (RELEASE_TARGETS=ci) when the host is linux/amd64 or
// darwin/arm64. RELEASE_DIST=<dir> uses an existing dist directory instead.
//
// It needs the release tools in .cache/bin (make release-tools; CI and make
// release-check build them anyway): without them it is skipped, so that a
// newcomer's make test does not build GoReleaser, and make test says so in
// one line. SMS_REQUIRE_RELEASE_TEST=1 (set by .ci/run) makes that a failure.
func TestReleaseSnapshotInstallsAsTheREADMESays(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dist := os.Getenv("RELEASE_DIST")
	if dist == "" {
		requireReleaseTools(t, root)
		dist = buildReleaseSnapshot(t, root)
	} else if !filepath.IsAbs(dist) {
		dist = filepath.Join(root, dist)
	}

	var meta struct {
		Version string `json:"version"`
	}
	raw, err := os.ReadFile(filepath.Join(dist, "metadata.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &meta))
	require.NotEmpty(t, meta.Version)

	sums := readSums(t, filepath.Join(dist, "SHA256SUMS"))
	base := fmt.Sprintf("%s_%s_%s_%s", pluginName, meta.Version, runtime.GOOS, runtime.GOARCH)
	archive := base + ".tar.gz"

	// Download and check: the archive's checksum is in SHA256SUMS.
	archiveSum, err := fileSHA256(filepath.Join(dist, archive))
	require.NoError(t, err)
	require.Equal(t, sums[archive], archiveSum, "SHA256SUMS must list %s with its checksum", archive)

	// Unpack, and copy the binary into plugin_directory under a name that no
	// other test uses.
	const file = pluginName + "-release"
	installed := filepath.Join(pluginDir, file)
	extractFile(t, filepath.Join(dist, archive), pluginName, installed)
	t.Cleanup(func() { _ = os.Remove(installed) })

	// The binary's checksum, as the README says, from SHA256SUMS.
	binarySum := sums[base]
	require.NotEmpty(t, binarySum, "SHA256SUMS must list the bare binary %s", base)
	require.NotEqual(t, archiveSum, binarySum)

	out, err := exec.CommandContext(t.Context(), installed, "-version").Output()
	require.NoError(t, err, "-version")
	version := strings.TrimSpace(string(out))
	require.Equal(t, "v"+meta.Version, version, "-version prints v and the release's version")

	t.Logf("registering %s (%s) with sha256 %s from SHA256SUMS (archive: %s)", file, version, binarySum, archiveSum)

	v := newVaultProcess(t, "release", serverConfig{})
	v.initialize()
	v.unseal(v.unsealKey)
	v.root("plugin", "register", "-sha256="+binarySum, "-version="+version, "-command="+file, "secret", pluginName)
	v.root("secrets", "enable", "-path=sms", pluginName)
	fake := standardFake(t)
	v.root("write", "sms/config", "endpoint="+fake.URL, "token="+smsToken)
	require.Equal(t, passphrase, strings.TrimSpace(v.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")))
	require.Equal(t, version, runningVersion(t, v, "sms/"))

	// The archive's checksum is not the one to register: Vault refuses to
	// start the plugin with it.
	v.root("plugin", "register", "-sha256="+archiveSum, "-version="+version, "-command="+file, "secret", "sms-wrong-sum")
	_, errOut, err := v.cli(v.rootToken, "secrets", "enable", "-path=wrong", "sms-wrong-sum")
	require.Error(t, err, "a plugin registered with the archive's checksum must not start")
	require.Contains(t, errOut, "checksum")
}

// releaseTools are what scripts/goreleaser.sh builds into .cache/bin (the
// Makefile's RELEASE_TOOLS names the same).
var releaseTools = []string{"goreleaser", "cyclonedx-gomod", "cyclonedx-reproducible"}

// requireReleaseTools skips the test when a release tool is not built, or
// fails it when SMS_REQUIRE_RELEASE_TEST=1.
func requireReleaseTools(t *testing.T, root string) {
	t.Helper()
	var missing []string
	for _, tool := range releaseTools {
		if _, err := os.Stat(filepath.Join(root, ".cache", "bin", tool)); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("release tools not built (.cache/bin lacks %s): run make release-tools, then this test", strings.Join(missing, ", "))
	if os.Getenv("SMS_REQUIRE_RELEASE_TEST") == "1" {
		t.Fatal(msg + " (SMS_REQUIRE_RELEASE_TEST=1: it must run here)")
	}
	t.Skip(msg)
}

// buildReleaseSnapshot runs `goreleaser release --snapshot` on this tree with
// the project's .goreleaser.yaml, writing into a temporary directory, and
// returns that directory.
func buildReleaseSnapshot(t *testing.T, root string) string {
	t.Helper()
	tmp := t.TempDir()
	dist := filepath.Join(tmp, "dist")
	cfg, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	require.NoError(t, err)
	cfgPath := filepath.Join(tmp, "goreleaser.yaml")
	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(cfg, "\ndist: %q\n", dist), 0o600))

	targets := ""
	if host := runtime.GOOS + "/" + runtime.GOARCH; host == "linux/amd64" || host == "darwin/arm64" {
		targets = "ci"
	}
	logPath := filepath.Join(tmp, "goreleaser.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "scripts", "goreleaser.sh"),
		"release", "--snapshot", "--clean", "--config", cfgPath)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RELEASE_TARGETS="+targets)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		logs, _ := os.ReadFile(logPath)
		t.Fatalf("goreleaser release --snapshot: %v\n%s", err, tail(string(logs), 40))
	}
	return dist
}

// readSums parses a sha256sum-style file: "<hex>  <name>" per line.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		require.True(t, ok, "malformed line in %s: %q", path, sc.Text())
		sums[name] = sum
	}
	require.NoError(t, sc.Err())
	return sums
}

// extractFile copies the file called name out of a .tar.gz archive to dst,
// executable.
func extractFile(t *testing.T, archive, name, dst string) {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no %s", archive, name)
		}
		require.NoError(t, err)
		if h.Name != name {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		require.NoError(t, err)
		_, err = io.Copy(out, tr) //nolint:gosec // G110: our own release archive, built by this test
		require.NoError(t, err)
		require.NoError(t, out.Close())
		return
	}
}
