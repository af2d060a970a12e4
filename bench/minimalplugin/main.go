// Command minimalplugin is a benchmark fixture, never shipped: the smallest
// secrets engine that answers read passphrase/<task_id> with constant data.
// scripts/bench.sh mounts it next to the SMS engine to measure what Vault and
// the plugin protocol cost before the engine does any work of its own.
package main

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/bench/internal/serve"
)

func main() { serve.Plugin("minimal plugin", factory) }

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "passphrase/" + framework.MatchAllRegex("task_id"),
			Fields:  map[string]*framework.FieldSchema{"task_id": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: read},
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func read(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{
		"task_id":    d.Get("task_id").(string),
		"passphrase": "constant-passphrase-0123456789ab",
	}}, nil
}
