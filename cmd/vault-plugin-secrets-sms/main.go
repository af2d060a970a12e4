// Command vault-plugin-secrets-sms is the Vault secrets-engine plugin that serves
// Huawei Cloud SMS task passphrases. Vault starts it; it is not run by hand,
// except as `vault-plugin-secrets-sms -version`, which prints the version the
// binary was built with (the value to give `vault plugin register -version`)
// and exits without contacting Vault.
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	sms "github.com/sms-vault/vault-plugin-secrets-sms"
)

func main() {
	// net/http's client writes the bytes an upstream sends unsolicited on an
	// idle connection to the standard logger, quoted. In a plugin, stderr
	// ends up in Vault's log, so a hostile upstream could write there
	// whatever it saw, credentials included. The engine logs through hclog.
	log.SetOutput(io.Discard)

	meta, showVersion, err := parseFlags(os.Args[1:])
	if err != nil {
		fatal(err)
	}
	if showVersion {
		printVersion(os.Stdout)
		return
	}

	err = plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: sms.Factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		fatal(err)
	}
}

// parseFlags parses the flags Vault starts plugins with (api.PluginAPIClientMeta:
// -ca-cert, -tls-skip-verify, ...) plus -version, in one flag set, so that
// adding -version changes nothing about how Vault's flags are read.
func parseFlags(args []string) (*api.PluginAPIClientMeta, bool, error) {
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	showVersion := flags.Bool("version", false, "print the plugin's version and exit")
	if err := flags.Parse(args); err != nil {
		return nil, false, err
	}
	return meta, *showVersion, nil
}

// printVersion writes the version set at build time, e.g. "v1.2.3".
func printVersion(w io.Writer) {
	_, _ = fmt.Fprintln(w, sms.Version)
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{Name: "vault-plugin-secrets-sms"}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
