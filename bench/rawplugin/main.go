// Command rawplugin is a benchmark fixture, never shipped: a secrets engine
// with no SDK framework at all, answering read passphrase/<task_id> with
// constant data. It is the true floor of an external plugin: Vault's HTTP
// layer, token and ACL checks, and one gRPC round trip. (bench/minimalplugin,
// built on the framework, also pays the framework's per-request call back into
// Vault for the replication state.)
package main

import (
	"context"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/bench/internal/serve"
)

func main() {
	serve.Plugin("raw plugin", func(context.Context, *logical.BackendConfig) (logical.Backend, error) { return &backend{}, nil })
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
