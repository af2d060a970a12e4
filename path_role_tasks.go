package sms

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// maxListedTasks bounds how many tasks a role's LIST reads from SMS: 50
// pages of 200. Past it the answer says it is incomplete.
const maxListedTasks = 10000

func pathRoleTasks(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "roles/(?P<role>[^/]+)/tasks/?$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sms", OperationSuffix: "role-tasks"},
		Fields: map[string]*framework.FieldSchema{
			"role": {Type: framework.TypeString, Required: true, Description: "Name of the role."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: &framework.PathOperation{
				Callback: b.pathRoleTasksList,
				Summary:  "List the tasks in the role's scope, with their name, state and enterprise project (never a passphrase).",
			},
		},
		HelpSynopsis: "The SMS tasks in the role's scope.",
		HelpDescription: `
LIST returns the ids of the tasks in the role's scope as keys, and key_info
with each task's name, state and enterprise_project_id. The engine pages
through SMS's task list (filtered by enterprise project in SMS where the role
names some; by name here) and reads at most 10,000 tasks: past that, a
warning says the list is incomplete.`,
	}}
}

func (b *backend) pathRoleTasksList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	conn, err := b.connection(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return notConfigured(req), nil
	}
	r, err := b.roles.get(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, roleMissing(name)
	}
	// Listing takes up to 50 pages from SMS per project: a role deleted or
	// changed meanwhile must not answer, as for reads.
	return b.judgedByTheStoredRole(ctx, req.Storage, name, r, func(r *role) (*logical.Response, error) {
		return b.listInScope(ctx, conn, r, name)
	})
}

// listInScope pages through SMS's tasks and answers with those role r
// allows.
func (b *backend) listInScope(ctx context.Context, conn *connection, r *role, name string) (*logical.Response, error) {
	keys := []string{}
	info := map[string]any{}
	read, skipped, complete, countMismatch := 0, 0, true, false
	// One pass per enterprise project, filtered by SMS; without any, one
	// unfiltered pass. The engine checks the scope of every task itself,
	// whatever SMS filtered.
	projects := r.EnterpriseProjectIDs
	if len(projects) == 0 {
		projects = []string{""}
	}
pages:
	for _, ep := range projects {
		for offset := 0; ; offset += huawei.MaxListLimit {
			if offset > huawei.MaxListOffset {
				complete = false // SMS serves no deeper page
				break
			}
			// Each page is a fetch, paid from the role's budget, within one
			// request_timeout with the wait for it.
			deadline, err := b.budgetFor(r, name, conn).take(ctx)
			if err != nil {
				return nil, fetchError(ctx, err)
			}
			pageCtx, cancel := ctx, context.CancelFunc(func() {})
			if !deadline.IsZero() {
				pageCtx, cancel = context.WithDeadline(ctx, deadline)
			}
			var page *huawei.TaskPage
			err = b.withRetryOnRotation(pageCtx, conn, r.agency, func(c *huawei.Client) (err error) {
				page, err = c.ListTasks(pageCtx, huawei.ListOptions{EnterpriseProjectID: ep, Limit: huawei.MaxListLimit, Offset: offset})
				return err
			})
			cancel()
			if err != nil {
				b.upstreamFailed("task list", "", err)
				return nil, fetchError(ctx, err)
			}
			for i := range page.Tasks {
				t := &page.Tasks[i]
				if read == maxListedTasks {
					complete = false
					break pages
				}
				read++
				if _, dup := info[t.ID]; dup || !r.allows(t) {
					continue
				}
				if validateTaskID(t.ID) != nil {
					skipped++ // an id the engine could never read
					continue
				}
				keys = append(keys, t.ID)
				// Scope was judged on SMS's own text; what a team's
				// terminal shows is made Printable.
				info[t.ID] = map[string]any{"name": huawei.Printable(t.Name), "state": huawei.Printable(t.State),
					"enterprise_project_id": huawei.Printable(t.EnterpriseProjectID)}
			}
			// A short page is the end, whatever count says: a count that
			// undercounts must not cut the list short without a word.
			if len(page.Tasks) < huawei.MaxListLimit {
				if offset+len(page.Tasks) != page.Count {
					countMismatch = true
				}
				break
			}
		}
	}

	resp := logical.ListResponseWithInfo(keys, info)
	if !complete {
		resp.AddWarning(fmt.Sprintf("the list is incomplete: the engine stopped after reading %d tasks from SMS", read))
	}
	if countMismatch {
		resp.AddWarning("SMS's task count disagreed with the tasks it listed; the list holds every task SMS returned")
	}
	if skipped > 0 {
		resp.AddWarning(fmt.Sprintf("%d tasks in scope were left out: SMS gave them ids that are not valid task ids", skipped))
	}
	return resp, nil
}
