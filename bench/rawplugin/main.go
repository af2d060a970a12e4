// Command rawplugin is a benchmark fixture, never shipped: a secrets engine
// with no SDK framework at all, answering read passphrase/<task_id> with
// constant data. It is the true floor of an external plugin: Vault's HTTP
// layer, token and ACL checks, and one gRPC round trip. (bench/minimalplugin,
// built on the framework, also pays the framework's per-request call back into
// Vault for the replication state.)
package main

import (
	"context"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: func(context.Context, *logical.BackendConfig) (logical.Backend, error) { return &backend{}, nil },
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.Default().Error("raw plugin", "error", err)
	os.Exit(1)
}

type backend struct{}

func (*backend) HandleRequest(_ context.Context, req *logical.Request) (*logical.Response, error) {
	id, ok := strings.CutPrefix(req.Path, "passphrase/")
	if !ok || req.Operation != logical.ReadOperation {
		return nil, logical.ErrUnsupportedPath
	}
	return &logical.Response{Data: map[string]any{"task_id": id, "passphrase": "constant-passphrase-0123456789ab"}}, nil
}

func (*backend) SpecialPaths() *logical.Paths { return nil }
func (*backend) System() logical.SystemView   { return nil }
func (*backend) Logger() hclog.Logger         { return hclog.NewNullLogger() }
func (*backend) HandleExistenceCheck(context.Context, *logical.Request) (bool, bool, error) {
	return false, false, nil
}
func (*backend) Cleanup(context.Context)                             {}
func (*backend) InvalidateKey(context.Context, string)               {}
func (*backend) Setup(context.Context, *logical.BackendConfig) error { return nil }
func (*backend) Initialize(context.Context, *logical.InitializationRequest) error {
	return nil
}
func (*backend) Type() logical.BackendType { return logical.TypeLogical }
