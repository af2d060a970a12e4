package sms

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// certKeyValue is a cached certkey answer.
type certKeyValue struct {
	ck *huawei.CertKey
}

// notAfter keeps the answer from being served, fresh or stale, past the
// earliest NotAfter of its certificates.
func (v *certKeyValue) notAfter() time.Time { return v.ck.EarliestNotAfter }

func certKeyKind(enableCA bool) kind {
	if enableCA {
		return kindCertKeyCA
	}
	return kindCertKey
}

// certKeyFields describes every field a certkey read may return.
func certKeyFields() map[string]*framework.FieldSchema {
	// Every field is marked sensitive, certificates too, as Huawei's own
	// Terraform provider does: together they are the channel's identity.
	cert := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeString, Description: desc + " (PEM), when SMS returned one.",
			DisplayAttrs: sensitive(desc)}
	}
	key := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeString, Description: desc + " (PEM, possibly encrypted), when SMS returned one.",
			DisplayAttrs: sensitive(desc)}
	}
	return map[string]*framework.FieldSchema{
		"task_id":                 {Type: framework.TypeString, Description: "The task asked for."},
		"cert":                    cert("Source-side (Agent) certificate"),
		"private_key":             key("Source-side (Agent) private key"),
		"ca":                      cert("CA certificate (with enable_ca_cert)"),
		"target_mgmt_cert":        cert("Target server's certificate for task management"),
		"target_mgmt_private_key": key("Target server's private key for task management"),
		"target_data_cert":        cert("Target server's certificate for data migration"),
		"target_data_private_key": key("Target server's private key for data migration"),
		"cert_not_after":          {Type: framework.TypeString, Description: "NotAfter of cert (RFC 3339), when it parses as an X.509 certificate."},
	}
}

var enableCAField = &framework.FieldSchema{Type: framework.TypeBool, Default: false,
	Description: "Ask SMS for the CA certificate too (its enable_ca_cert parameter); answers with and without it are cached separately."}

func pathCertKey(b *backend) []*framework.Path {
	return []*framework.Path{{
		// Match anything, so that a malformed task_id reaches validation.
		Pattern:      "certkey/" + framework.MatchAllRegex("task_id"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "certkey"},
		Fields: map[string]*framework.FieldSchema{
			"task_id":        {Type: framework.TypeString, Required: true, Description: "ID of the SMS migration task."},
			"enable_ca_cert": enableCAField,
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCertKeyRead,
				Summary:  "Read the certificate and private keys of an SMS task's secure transmission channel.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: certKeyFields()}},
				},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:    b.pathTaskEvict,
				Summary:     "Evict everything cached of the task, without calling SMS.",
				Description: "The next read fetches it from SMS again. Grant it separately from read in ACL policies.",
				Responses:   map[int][]framework.Response{http.StatusNoContent: {{Description: "OK"}}},
			},
		},
		HelpSynopsis: "The channel certificate and keys of an SMS migration task.",
		HelpDescription: `
Read returns task_id and each of cert, private_key, ca, target_mgmt_cert,
target_mgmt_private_key, target_data_cert and target_data_private_key that SMS
returned (GET /v3/tasks/{task_id}/certkey), plus cert_not_after, without a
lease. Private keys are served as SMS gives them, encrypted or not: the engine
never decrypts one. An answer is cached like a passphrase, and never served past
the earliest NotAfter of its certificates. Delete evicts the task's cached
answers.`,
	}}
}

func (b *backend) pathCertKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	taskID := d.Get("task_id").(string)
	if err := validateTaskID(taskID); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	conn, epoch, _, resp, err := b.readConnection(ctx, req)
	if conn == nil {
		return resp, err
	}
	return b.certKeyResponse(ctx, conn, epoch, b.cache.view(taskID, conn.policy), nil, taskID, d.Get("enable_ca_cert").(bool), nil, nil)
}

// certKeyResponse answers with a task's certificate and keys, from the cache
// or from SMS (spend pays for a fetch, see cache.fetch), adding warnings to
// any the caller collected. via and v are as for passphraseResponse.
func (b *backend) certKeyResponse(ctx context.Context, conn *connection, epoch uint64, v view, via *agencyRef, taskID string, enableCA bool, spend *budget, warnings []string) (*logical.Response, error) {
	k := certKeyKind(enableCA)
	var ans answer
	if val, ok := v.fresh(k); ok {
		ans = answer{value: val}
	} else {
		var err error
		ans, err = b.cache.fetch(ctx, cacheKey{kind: k, id: taskID, sp: via.sp()}, epoch, conn.policy, spend, func(ctx context.Context) (any, error) {
			if b.fetchHook != nil {
				b.fetchHook()
			}
			var ck *huawei.CertKey
			err := b.withRetryOnRotation(ctx, conn, via, func(c *huawei.Client) (err error) {
				ck, err = c.CertKey(ctx, taskID, enableCA)
				return err
			})
			if err != nil {
				b.upstreamFailed("certkey", taskID, err)
				return nil, err
			}
			return &certKeyValue{ck: ck}, nil
		})
		if err != nil {
			return nil, fetchError(ctx, err)
		}
	}

	ck := ans.value.(*certKeyValue).ck
	data := map[string]any{"task_id": taskID}
	for _, f := range ck.Fields() {
		if f.Value != "" {
			data[f.Name] = f.Value
		}
	}
	if !ck.CertNotAfter.IsZero() {
		data["cert_not_after"] = ck.CertNotAfter.UTC().Format(time.RFC3339)
	}
	resp := &logical.Response{Data: data, Warnings: warnings}
	if w := staleWarning("certificate and keys", ans); w != "" {
		resp.AddWarning(w)
	}
	if na := ck.EarliestNotAfter; !na.IsZero() && !b.now().Before(na) {
		resp.AddWarning(fmt.Sprintf("a certificate SMS returned expired at %s; it is not cached", na.UTC().Format(time.RFC3339)))
	}
	return resp, nil
}
