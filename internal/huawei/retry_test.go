package huawei

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextWaitBackoffAndRetryAfter(t *testing.T) {
	for attempts, max := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 9: 2 * time.Second} {
		for i := 0; i < 50; i++ {
			w, ok := nextWait(attempts, nil)
			require.True(t, ok)
			require.GreaterOrEqual(t, w, max/2, "jitter never goes below half the base")
			require.LessOrEqual(t, w, max)
		}
	}
	resp := &http.Response{Header: http.Header{"Retry-After": {"4"}}}
	w, ok := nextWait(1, resp)
	require.True(t, ok)
	require.Equal(t, 4*time.Second, w)
	resp.Header.Set("Retry-After", "11")
	_, ok = nextWait(1, resp)
	require.False(t, ok, "a Retry-After over the cap ends the retries")
	now := time.Now()
	d, ok := parseRetryAfter(now.Add(3*time.Second).UTC().Format(http.TimeFormat), now)
	require.True(t, ok)
	require.InDelta(t, float64(3*time.Second), float64(d), float64(time.Second))
	_, ok = parseRetryAfter("soon", now)
	require.False(t, ok)
}
