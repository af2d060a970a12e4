package huawei

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// iamAnswering is a client whose IAM answers every call with status and body.
func iamAnswering(t *testing.T, status int, body string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodAccessKey, AccessKey: "AKIAM0TEST",
		SecretKey: "iam-test-secret-0a1b2c", Timeout: 5 * time.Second, MaxRetries: 0})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// The official SDK takes a key list of null, or without the field, as empty.
func TestKeyListWithoutCredentialsIsEmpty(t *testing.T) {
	for _, answer := range []string{`{"credentials":null}`, `{}`, `{"credentials":[]}`} {
		keys, err := iamAnswering(t, http.StatusOK, answer).ListAccessKeys(context.Background(), "u1")
		require.NoError(t, err, answer)
		require.Empty(t, keys, answer)
	}
	_, err := iamAnswering(t, http.StatusOK, `{"credentials":{}}`).ListAccessKeys(context.Background(), "u1")
	require.Error(t, err, "a list that is not a list is still malformed")
}

// Deleting a key IAM no longer has is done: a retry after a lost answer, or a
// deletion applied late, finds it so.
func TestDeletingAKeyThatIsGoneSucceeds(t *testing.T) {
	require.NoError(t, iamAnswering(t, http.StatusNotFound,
		`{"error":{"code":404,"message":"Could not find credential.","title":"Not Found"}}`).DeleteAccessKey(context.Background(), "AK2"))
	err := iamAnswering(t, http.StatusForbidden,
		`{"error":{"code":403,"message":"You are not authorized.","title":"Forbidden"}}`).DeleteAccessKey(context.Background(), "AK2")
	require.Error(t, err)
}
