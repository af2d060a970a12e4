package huawei

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
	}
	return *body.Passphrase, nil
}
