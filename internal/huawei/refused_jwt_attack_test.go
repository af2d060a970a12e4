package huawei

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// A kubelet-rotated JWT stays valid for a while after its successor is
// written. A refused exchange of the successor whose answer quotes the
// JWT exchanged before (an IAM answering anything) showed it in the read's
// error and in the log: only the JWT of the call and the last one are
// redacted, not the ones the source refused before.
func TestAttackIDTokenAnswerQuotingThePreviousJWTIsRedacted(t *testing.T) {
	jwts := []Secret{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmaXJzdCJ9.c2lnbmF0dXJlLWZpcnN0LXByZXZpb3Vz",
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNvbmQifQ.c2lnbmF0dXJlLXNlY29uZC1uZXh0b25l",
	}
	var mu sync.Mutex
	var previous string
	current := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body idTokenRequest
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		mu.Lock()
		quoted := previous
		previous = body.Auth.IDToken.ID
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
			"message": "The request you have made requires authentication. last token: " + quoted}})
	}))
	defer srv.Close()
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	c, err := New(Options{Endpoint: srv.URL, IAMEndpoint: srv.URL, Method: MethodIDToken, IDPID: "idp",
		IDToken: func(context.Context) (Secret, error) {
			mu.Lock()
			defer mu.Unlock()
			return jwts[current], nil
		},
		Timeout: 5 * time.Second, MaxRetries: 0, Logger: logger})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Passphrase(context.Background(), "task-1")
	require.Error(t, err)
	mu.Lock()
	current = 1 // rotated into the file: exchanged at once
	mu.Unlock()
	_, err = c.Passphrase(context.Background(), "task-1")
	require.Error(t, err)
	for _, text := range []string{err.Error(), logs.String()} {
		require.NotContains(t, text, "WZpcnN0LXByZXZpb3Vz", "the signature of the JWT exchanged before is quoted")
	}
}
