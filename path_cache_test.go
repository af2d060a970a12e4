package sms

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCacheFlushAndStats(t *testing.T) {
	env := newTestEnv(t)
	env.configure(nil)
	env.readPassphrase(testTask)
	env.readPassphrase(testTask)
	env.readPassphrase("missing-task")

	stats := env.cacheStats()
	require.EqualValues(t, 1, stats["entries"])
	require.EqualValues(t, 1, stats["hits"])
	require.EqualValues(t, 2, stats["misses"])
	require.EqualValues(t, 2, stats["upstream_requests"])
	require.EqualValues(t, 1, stats["upstream_errors"])
	assertNoSecrets(t, fmt.Sprint(stats))

	status, msg := env.del("cache")
	require.Equal(t, http.StatusNoContent, status, msg)
	stats = env.cacheStats()
	require.EqualValues(t, 0, stats["entries"])
	require.EqualValues(t, 1, stats["hits"], "a flush keeps the counters")

	env.readPassphrase(testTask)
	require.EqualValues(t, 3, env.fake.Stats().Requests)
}

func TestCacheReadWorksUnconfiguredAndCountsExpiredEntriesOut(t *testing.T) {
	env := newTestEnv(t)
	stats := env.cacheStats()
	require.EqualValues(t, 0, stats["entries"])

	env.configure(map[string]any{"cache_ttl": "60s"})
	env.readPassphrase(testTask)
	require.EqualValues(t, 1, env.cacheStats()["entries"])
	env.clock.Advance(61 * time.Second)
	require.EqualValues(t, 0, env.cacheStats()["entries"], "an expired entry is not reported as held")
}
