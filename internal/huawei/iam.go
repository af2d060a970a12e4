package huawei

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// The IAM calls of root-credential rotation: a user's permanent access keys
// (show, list, create, delete) and changing one's own password. They are
// signed with the client's access key, or carry its IAM token, like SMS
// calls; acting on one's own keys and password needs no IAM permission.

const maxIAMAnswer = 64 << 10

// AccessKeyInfo describes a permanent access key, never with its secret.
type AccessKeyInfo struct {
	Access      string `json:"access"`
	UserID      string `json:"user_id"`
	Status      string `json:"status"`
	CreateTime  string `json:"create_time"`
	Description string `json:"description"`
}

func (c *Client) iamCall(method, path string, body any, noRetry bool) (call, error) {
	if c.iamHTTP == nil {
		return call{}, &Error{Kind: KindInternal, Service: "IAM", Detail: "no IAM endpoint is configured"}
	}
	k := call{service: "IAM", method: method, url: c.iamBase + path, limit: maxIAMAnswer, noRetry: noRetry,
		notFound: "has no such resource"}
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return call{}, &Error{Kind: KindInternal, Service: "IAM", Detail: "request could not be built"}
		}
		k.body = raw
	}
	return k, nil
}

// iam runs an IAM call and decodes a success answer (one of ok) into v.
func (c *Client) iam(ctx context.Context, k call, v any, ok ...int) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ans, err := c.do(ctx, k)
	if err != nil {
		return err
	}
	for _, status := range ok {
		if ans.status == status {
			if v == nil {
				return nil
			}
			return c.decode(k, ans, v)
		}
	}
	return c.classify(k, ans)
}

func credentialPath(access string) string {
	return "/v3.0/OS-CREDENTIAL/credentials/" + url.PathEscape(access)
}

// ShowAccessKey describes a key: who owns it (GET
// /v3.0/OS-CREDENTIAL/credentials/{access_key}).
func (c *Client) ShowAccessKey(ctx context.Context, access string) (info *AccessKeyInfo, err error) {
	defer recovered("IAM", c.logger, &err)
	k, err := c.iamCall(http.MethodGet, credentialPath(access), nil, false)
	if err != nil {
		return nil, err
	}
	var body struct {
		Credential *AccessKeyInfo `json:"credential"`
	}
	if err := c.iam(ctx, k, &body, http.StatusOK); err != nil {
		return nil, err
	}
	if body.Credential == nil || body.Credential.UserID == "" || body.Credential.Access != access {
		return nil, &Error{Kind: KindBadResponse, Service: "IAM", Detail: "answered without the key's owner"}
	}
	info = new(AccessKeyInfo)
	*info = body.Credential.redactedBy(c.redact)
	return info, nil
}

// ListAccessKeys lists a user's permanent keys (GET
// /v3.0/OS-CREDENTIAL/credentials?user_id=).
func (c *Client) ListAccessKeys(ctx context.Context, userID string) (keys []AccessKeyInfo, err error) {
	defer recovered("IAM", c.logger, &err)
	k, err := c.iamCall(http.MethodGet, "/v3.0/OS-CREDENTIAL/credentials?user_id="+url.QueryEscape(userID), nil, false)
	if err != nil {
		return nil, err
	}
	var body struct {
		Credentials *[]AccessKeyInfo `json:"credentials"`
	}
	if err := c.iam(ctx, k, &body, http.StatusOK); err != nil {
		return nil, err
	}
	// A user without keys may come as "credentials": null or without the
	// field (the official SDK takes both as an empty list).
	if body.Credentials == nil {
		return nil, nil
	}
	keys = make([]AccessKeyInfo, 0, len(*body.Credentials))
	for _, key := range *body.Credentials {
		keys = append(keys, key.redactedBy(c.redact))
	}
	return keys, nil
}

// ErrKeyLimit is the Detail of the error CreateAccessKey returns when the user
// already holds as many keys as IAM allows.
const ErrKeyLimit = "refused to create an access key: the user already has as many as IAM allows (2)"

// CreateAccessKey creates a permanent key for a user (POST
// /v3.0/OS-CREDENTIAL/credentials). It is never retried: a retry after a lost
// answer would create a second key.
func (c *Client) CreateAccessKey(ctx context.Context, userID, description string) (access string, secret Secret, err error) {
	defer recovered("IAM", c.logger, &err)
	var req struct {
		Credential struct {
			UserID      string `json:"user_id"`
			Description string `json:"description"`
		} `json:"credential"`
	}
	req.Credential.UserID, req.Credential.Description = userID, description
	k, err := c.iamCall(http.MethodPost, "/v3.0/OS-CREDENTIAL/credentials", req, true)
	if err != nil {
		return "", "", err
	}
	var body struct {
		Credential struct {
			Access string `json:"access"`
			Secret string `json:"secret"`
		} `json:"credential"`
	}
	if err := c.iam(ctx, k, &body, http.StatusCreated, http.StatusOK); err != nil {
		var e *Error
		if asError(err, &e) && e.Status == http.StatusBadRequest && strings.Contains(e.Message, "akSkNumExceed") {
			e.Detail = ErrKeyLimit
		}
		return "", "", err
	}
	if !visibleASCII(body.Credential.Access, 128) || !visibleASCII(body.Credential.Secret, 256) {
		// A success status all the same: IAM created a key, and the caller
		// must treat it as one whose secret was lost, not as a refusal.
		return "", "", &Error{Kind: KindBadResponse, Service: "IAM", Status: http.StatusCreated,
			Detail: "answered the key creation without a usable access key and secret"}
	}
	return body.Credential.Access, Secret(body.Credential.Secret), nil
}

// DeleteAccessKey deletes a permanent key (DELETE
// /v3.0/OS-CREDENTIAL/credentials/{access_key}).
func (c *Client) DeleteAccessKey(ctx context.Context, access string) (err error) {
	defer recovered("IAM", c.logger, &err)
	k, err := c.iamCall(http.MethodDelete, credentialPath(access), nil, false)
	if err != nil {
		return err
	}
	err = c.iam(ctx, k, nil, http.StatusNoContent, http.StatusOK)
	var e *Error
	if asError(err, &e) && e.Kind == KindNotFound {
		// Gone is what was asked: a retry after a lost answer, or a
		// deletion IAM applied late, finds it so.
		return nil
	}
	return err
}

// ChangePassword changes the client's own IAM user's password (POST
// /v3/users/{user_id}/password), with the user's token. It is never retried:
// after a lost answer the old password may no longer be the original.
func (c *Client) ChangePassword(ctx context.Context, userID string, original, next Secret) (err error) {
	defer recovered("IAM", c.logger, &err)
	var req struct {
		User struct {
			Original string `json:"original_password"`
			Password string `json:"password"`
		} `json:"user"`
	}
	req.User.Original, req.User.Password = string(original), string(next)
	k, err := c.iamCall(http.MethodPost, "/v3/users/"+url.PathEscape(userID)+"/password", req, true)
	if err != nil {
		return err
	}
	k.redact = []string{string(next)}
	return c.iam(ctx, k, nil, http.StatusNoContent, http.StatusOK)
}

// UserID returns the IAM user id of the password method's user, from its
// token (obtaining one if need be).
func (c *Client) UserID(ctx context.Context) (string, error) {
	if c.tokens == nil {
		return "", &Error{Kind: KindInternal, Service: "IAM", Detail: "the user id is known only with the password method"}
	}
	if _, err := c.tokens.current(ctx); err != nil {
		return "", err
	}
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	if c.tokens.userID == "" {
		return "", &Error{Kind: KindBadResponse, Service: "IAM", Detail: "issued a token without token.user.id"}
	}
	return c.tokens.userID, nil
}

// Describe names an error's step for an operator: "<step>: <error>".
func Describe(step string, err error) string { return fmt.Sprintf("%s: %v", step, err) }
