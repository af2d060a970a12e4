// Package serve is the main of the benchmark fixture plugins: it serves a
// backend factory the way Vault expects an external plugin to.
package serve

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// Plugin serves factory and exits when Vault closes the connection.
func Plugin(name string, factory logical.Factory) {
	meta := &api.PluginAPIClientMeta{}
	err := meta.FlagSet().Parse(os.Args[1:])
	if err == nil {
		err = plugin.ServeMultiplex(&plugin.ServeOpts{
			BackendFactoryFunc: factory,
			TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
		})
	}
	if err != nil {
		hclog.Default().Error(name, "error", err)
		os.Exit(1)
	}
}
