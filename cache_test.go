package sms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cacheGet is a read as readPassphrase does it: a fresh entry, or a fetch.
func cacheGet(c *passphraseCache, taskID string, epoch uint64, p cachePolicy, fetch func(context.Context) (string, error)) (answer, error) {
	if e, ok := c.fresh(taskID, p); ok {
		return answer{passphrase: e.passphrase.(string)}, nil
	}
	return c.fetch(context.Background(), taskID, epoch, p, fetch)
}

func TestAnswerFetchedBeforeAFlushIsNotStored(t *testing.T) {
	clock := newFakeClock()
	c := newPassphraseCache(10, clock.Now)
	policy := cachePolicy{ttl: time.Minute}

	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan answer)
	epoch := c.currentEpoch()
	go func() {
		ans, _ := cacheGet(c, "t", epoch, policy, func(context.Context) (string, error) {
			close(started)
			<-release
			return "old-config-answer", nil
		})
		done <- ans
	}()
	<-started
	c.flush() // the config changes while the call is in flight
	close(release)
	require.Equal(t, "old-config-answer", (<-done).passphrase, "the caller still gets its answer")
	require.Zero(t, c.len(), "but it must not be cached past the flush")

	// A read after the flush does not join the old call, and its answer is kept.
	ans, err := cacheGet(c, "t", c.currentEpoch(), policy, func(context.Context) (string, error) {
		return "new-config-answer", nil
	})
	require.NoError(t, err)
	require.Equal(t, "new-config-answer", ans.passphrase)
	require.Equal(t, 1, c.len())
}

func TestStaleEntryServedOnlyForTransientFailuresWithinTheWindow(t *testing.T) {
	clock := newFakeClock()
	c := newPassphraseCache(10, clock.Now)
	policy := cachePolicy{ttl: time.Minute, staleIfError: 10 * time.Minute}
	ok := func(context.Context) (string, error) { return "cached", nil }
	down := func(context.Context) (string, error) {
		return "", &upstreamError{kind: failServer, service: "SMS", status: 503, detail: "failed"}
	}
	gone := func(context.Context) (string, error) {
		return "", &upstreamError{kind: failNotFound, service: "SMS", status: 404, detail: "has no task"}
	}

	_, err := cacheGet(c, "t", 0, policy, ok)
	require.NoError(t, err)

	clock.Advance(2 * time.Minute) // expired, inside the stale window
	ans, err := cacheGet(c, "t", 0, policy, down)
	require.NoError(t, err)
	require.Equal(t, "cached", ans.passphrase)
	require.NotNil(t, ans.staleFor)
	require.Equal(t, 2*time.Minute, ans.age)

	// A definitive answer (404) is not papered over.
	_, err = cacheGet(c, "t", 0, policy, gone)
	var ue *upstreamError
	require.True(t, errors.As(err, &ue))
	require.Equal(t, failNotFound, ue.kind)

	clock.Advance(10 * time.Minute) // past cache_ttl + stale_if_error
	_, err = cacheGet(c, "t", 0, policy, down)
	require.Error(t, err)
	require.EqualValues(t, 1, c.staleServed.Load())
}

func TestStaleIfErrorWorksWithCachingOff(t *testing.T) {
	clock := newFakeClock()
	c := newPassphraseCache(10, clock.Now)
	policy := cachePolicy{ttl: 0, staleIfError: time.Minute}
	calls := 0
	_, err := cacheGet(c, "t", 0, policy, func(context.Context) (string, error) { calls++; return "v", nil })
	require.NoError(t, err)
	ans, err := cacheGet(c, "t", 0, policy, func(context.Context) (string, error) { calls++; return "v2", nil })
	require.NoError(t, err)
	require.Equal(t, "v2", ans.passphrase, "with cache_ttl 0 every read goes upstream")
	require.Equal(t, 2, calls)

	ans, err = cacheGet(c, "t", 0, policy, func(context.Context) (string, error) {
		return "", &upstreamError{kind: failUnreachable, service: "SMS", detail: "could not be reached"}
	})
	require.NoError(t, err)
	require.Equal(t, "v2", ans.passphrase)
	require.NotNil(t, ans.staleFor)
}
