// Command vault-plugin-secrets-sms is the Vault secrets-engine plugin that serves
// Huawei Cloud SMS task passphrases. Vault starts it; it is not run by hand.
package main

import (
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

	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}

	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: sms.Factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{Name: "vault-plugin-secrets-sms"}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
