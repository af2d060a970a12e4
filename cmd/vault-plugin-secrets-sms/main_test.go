package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	sms "github.com/sms-vault/vault-plugin-secrets-sms"
)

// TestMain lets a test run the real main() in a child process: the test binary
// re-executes itself with PLUGIN_MAIN_ARGS set, and main() sees those args.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("PLUGIN_MAIN_ARGS"); ok {
		os.Args = append([]string{"vault-plugin-secrets-sms"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseFlagsVersion(t *testing.T) {
	_, showVersion, err := parseFlags([]string{"-version"})
	if err != nil || !showVersion {
		t.Fatalf("parseFlags(-version) = %v, %v; want true, nil", showVersion, err)
	}
}

// Vault starts a plugin with no arguments, or with the PluginAPIClientMeta TLS
// flags; -version must not change how those parse.
func TestParseFlagsKeepsVaultsFlags(t *testing.T) {
	meta, showVersion, err := parseFlags(nil)
	if err != nil || showVersion || meta.GetTLSConfig() != nil {
		t.Fatalf("no args: meta %+v, version %v, err %v; want no TLS config, false, nil", meta.GetTLSConfig(), showVersion, err)
	}

	meta, showVersion, err = parseFlags([]string{"-ca-cert=/ca.pem", "-tls-server-name=vault.example", "-tls-skip-verify"})
	if err != nil || showVersion {
		t.Fatalf("TLS flags: version %v, err %v; want false, nil", showVersion, err)
	}
	tls := meta.GetTLSConfig()
	if tls == nil || tls.CACert != "/ca.pem" || tls.TLSServerName != "vault.example" || !tls.Insecure {
		t.Fatalf("TLS flags were not parsed: %+v", tls)
	}

	if _, _, err := parseFlags([]string{"-no-such-flag"}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
}

func TestVersionFlagPrintsVersionAndExits(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	// No VAULT_* variables and no Vault: -version must not need them.
	cmd.Env = []string{"PLUGIN_MAIN_ARGS=-version"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("-version: %v; stderr: %s", err, stderr.String())
	}
	if got, want := stdout.String(), sms.Version+"\n"; got != want {
		t.Fatalf("-version printed %q, want %q", got, want)
	}
	if !strings.HasPrefix(sms.Version, "v") {
		t.Fatalf("Version %q has no leading v", sms.Version)
	}
}
