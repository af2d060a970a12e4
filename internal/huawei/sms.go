package huawei

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

const (
	maxPassphraseBody = 64 << 10 // a 200 answer larger than this is refused
	maxPassphraseLen  = 255
)

// smsGet describes a GET of an SMS task resource.
func (c *Client) smsGet(path string, limit int64, action, notFound string) call {
	return call{service: "SMS", method: http.MethodGet, url: c.smsBase + path, limit: limit, action: action, notFound: notFound}
}

func taskPath(taskID string) string { return "/v3/tasks/" + url.PathEscape(taskID) }

// Passphrase returns the certificate passphrase of a task
// (GET /v3/tasks/{task_id}/passphrase). The whole call, retries and waits
// included, ends within the client's timeout. Every error is an *Error.
func (c *Client) Passphrase(ctx context.Context, taskID string) (passphrase string, err error) {
	defer recovered("SMS", c.logger, &err)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	k := c.smsGet(taskPath(taskID)+"/passphrase", maxPassphraseBody, "sms:server:getTaskPassphrase", fmt.Sprintf("has no task %q", taskID))
	ans, err := c.do(ctx, k)
	if err != nil {
		return "", err
	}
	return c.passphraseFrom(k, ans, taskID)
}

// passphraseFrom decodes the final answer of a passphrase call.
func (c *Client) passphraseFrom(k call, ans *answer, taskID string) (string, error) {
	if ans.status != http.StatusOK {
		return "", c.classify(k, ans)
	}
	var body struct {
		TaskID     *string `json:"task_id"`
		Passphrase *string `json:"passphrase"`
	}
	if err := c.decode(k, ans, &body); err != nil {
		return "", err
	}
	switch {
	case body.Passphrase == nil:
		return "", c.bad(k, ans, "answered without a passphrase")
	case body.TaskID != nil && *body.TaskID != taskID:
		return "", c.bad(k, ans, "answered for a different task_id than the one asked for")
	case len(*body.Passphrase) > maxPassphraseLen:
		return "", c.bad(k, ans, fmt.Sprintf("answered with a passphrase over %d characters", maxPassphraseLen))
	case HoldsHidden(*body.Passphrase):
		// It reaches a team's terminal raw (vault read prints it), and
		// cleaning it would corrupt the secret: SMS never generates one
		// holding an escape, a bidi override or broken UTF-8.
		return "", c.bad(k, ans, "answered with a passphrase holding a control, format or other hidden character, U+FFFD or bytes that are not UTF-8")
	}
	return *body.Passphrase, nil
}

const (
	maxTaskBody     = 256 << 10 // ShowTask carries disks, sub-tasks and more
	maxTaskListBody = 8 << 20   // up to 200 list items per page
	// MaxListLimit is the largest page ListTasks serves.
	MaxListLimit = 200
	// MaxListOffset is the largest offset ListTasks accepts.
	MaxListOffset = 65535
)

// Task is what the engine needs of a task's metadata (ShowTask, or an item
// of ListTasks). Every field is optional upstream; absent ones are empty.
type Task struct {
	ID                  string `json:"id"`
	Name                string `json:"name"`
	State               string `json:"state"`
	EnterpriseProjectID string `json:"enterprise_project_id"`
}

// Task returns the metadata of a task (GET /v3/tasks/{task_id}).
func (c *Client) Task(ctx context.Context, taskID string) (task *Task, err error) {
	defer recovered("SMS", c.logger, &err)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	k := c.smsGet(taskPath(taskID), maxTaskBody, "sms:server:getTask", fmt.Sprintf("has no task %q", taskID))
	ans, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	if ans.status != http.StatusOK {
		return nil, c.classify(k, ans)
	}
	var t Task
	if err := c.decode(k, ans, &t); err != nil {
		return nil, err
	}
	if t.ID != "" && t.ID != taskID {
		return nil, c.bad(k, ans, "answered for a different task id than the one asked for")
	}
	if err := checkTaskFields(&t); err != "" {
		return nil, c.bad(k, ans, err)
	}
	t.ID = taskID
	return &t, nil
}

// checkTaskFields bounds what the engine keeps of a task's metadata.
func checkTaskFields(t *Task) string {
	for _, f := range []struct{ name, v string }{
		{"id", t.ID}, {"name", t.Name}, {"state", t.State}, {"enterprise_project_id", t.EnterpriseProjectID},
	} {
		if len(f.v) > 255 || !utf8.ValidString(f.v) {
			return fmt.Sprintf("answered with a task %s that is not valid UTF-8 of at most 255 bytes", f.name)
		}
	}
	return ""
}

// ListOptions selects a page of ListTasks.
type ListOptions struct {
	EnterpriseProjectID string // only tasks of this enterprise project, when set
	Limit               int    // 1 to MaxListLimit
	Offset              int    // 0 to MaxListOffset
}

// TaskPage is one page of ListTasks.
type TaskPage struct {
	Count int    // matching tasks in all, whatever the paging
	Tasks []Task // this page's
}

// ListTasks returns one page of tasks (GET /v3/tasks).
func (c *Client) ListTasks(ctx context.Context, opts ListOptions) (page *TaskPage, err error) {
	defer recovered("SMS", c.logger, &err)
	if opts.Limit < 1 || opts.Limit > MaxListLimit || opts.Offset < 0 || opts.Offset > MaxListOffset {
		return nil, &Error{Kind: KindInternal, Service: "SMS", Detail: "task list requested with paging out of range"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	q := url.Values{"limit": {strconv.Itoa(opts.Limit)}, "offset": {strconv.Itoa(opts.Offset)}}
	if opts.EnterpriseProjectID != "" {
		q.Set("enterprise_project_id", opts.EnterpriseProjectID)
	}
	k := c.smsGet("/v3/tasks?"+q.Encode(), maxTaskListBody, "sms:server:listTask", "")
	ans, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	if ans.status != http.StatusOK {
		return nil, c.classify(k, ans)
	}
	var body struct {
		Count *int   `json:"count"`
		Tasks []Task `json:"tasks"`
	}
	if err := c.decode(k, ans, &body); err != nil {
		return nil, err
	}
	if body.Count == nil || *body.Count < 0 {
		return nil, c.bad(k, ans, "answered the task list without a count")
	}
	if len(body.Tasks) > opts.Limit {
		return nil, c.bad(k, ans, "answered the task list with more tasks than asked for")
	}
	for i := range body.Tasks {
		if body.Tasks[i].ID == "" {
			return nil, c.bad(k, ans, "answered the task list with a task without an id")
		}
		if err := checkTaskFields(&body.Tasks[i]); err != "" {
			return nil, c.bad(k, ans, err)
		}
	}
	return &TaskPage{Count: *body.Count, Tasks: body.Tasks}, nil
}
