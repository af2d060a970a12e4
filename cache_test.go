package sms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// cacheGet is a read as readPassphrase does it: a fresh entry, or a fetch.
func cacheGet(c *cache, id string, epoch uint64, p cachePolicy, fetch func(context.Context) (any, error)) (answer, error) {
	if v, ok := c.view(id, p).fresh(kindPassphrase); ok {
		return answer{value: v}, nil
	}
	return c.fetch(context.Background(), passphraseKey(id, nil), epoch, p, nil, fetch)
}

func (c *cache) len() int { return c.lenByKind()[kindPassphrase] }

func value(v any) func(context.Context) (any, error) {
	return func(context.Context) (any, error) { return v, nil }
}

func newTestCache(clock *fakeClock) *cache { return newCache(10, clock.Now, hclog.NewNullLogger()) }

func TestAnswerFetchedBeforeAFlushIsNotStored(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(clock)
	policy := cachePolicy{ttl: time.Minute}

	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan answer)
	epoch := c.currentEpoch()
	go func() {
		ans, _ := cacheGet(c, "t", epoch, policy, func(context.Context) (any, error) {
			close(started)
			<-release
			return "old-config-answer", nil
		})
		done <- ans
	}()
	<-started
	c.flush() // the config changes while the call is in flight
	close(release)
	require.Equal(t, "old-config-answer", (<-done).value, "the caller still gets its answer")
	require.Zero(t, c.len(), "but it must not be cached past the flush")

	// A read after the flush does not join the old call, and its answer is kept.
	ans, err := cacheGet(c, "t", c.currentEpoch(), policy, value("new-config-answer"))
	require.NoError(t, err)
	require.Equal(t, "new-config-answer", ans.value)
	require.Equal(t, 1, c.len())
}

// A reader that missed just before another reader's fetch stored its answer
// and ended reaches fetch with nothing in flight: it takes the stored
// answer instead of asking SMS again (seen as 1,001 upstream requests for
// 1,000 tasks under load).
func TestReaderThatMissedJustBeforeAStoreTakesTheStoredAnswer(t *testing.T) {
	c := newTestCache(newFakeClock())
	policy := cachePolicy{ttl: time.Minute}
	v := c.view("t", policy)
	_, ok := v.fresh(kindPassphrase)
	require.False(t, ok, "the late reader misses")
	_, err := cacheGet(c, "t", c.currentEpoch(), policy, value("first"))
	require.NoError(t, err)

	ans, err := c.fetch(context.Background(), passphraseKey("t", nil), c.currentEpoch(), policy, nil, func(context.Context) (any, error) {
		t.Error("asked upstream again")
		return "second", nil
	})
	require.NoError(t, err)
	require.Equal(t, "first", ans.value)

	// Not an expired entry, though, and not after an eviction.
	c.evictTask("t")
	ans, err = c.fetch(context.Background(), passphraseKey("t", nil), c.currentEpoch(), policy, nil, value("after-evict"))
	require.NoError(t, err)
	require.Equal(t, "after-evict", ans.value)
}

func TestReadThatLoadedAnOldConfigIsAnsweredButNotStored(t *testing.T) {
	c := newTestCache(newFakeClock())
	policy := cachePolicy{ttl: time.Minute}
	epoch := c.currentEpoch()
	c.flush()
	ans, err := cacheGet(c, "t", epoch, policy, value("under-the-old-config"))
	require.NoError(t, err)
	require.Equal(t, "under-the-old-config", ans.value)
	require.Zero(t, c.len())
}

func TestEvictionMakesTheFetchInFlightUnstorableAndUnjoinable(t *testing.T) {
	c := newTestCache(newFakeClock())
	policy := cachePolicy{ttl: time.Minute}
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan answer)
	go func() {
		ans, _ := cacheGet(c, "t", 0, policy, func(context.Context) (any, error) {
			close(started)
			<-release
			return "before-the-delete", nil
		})
		done <- ans
	}()
	<-started
	c.evictTask("t")
	// A read after the eviction makes its own call while the first is held.
	ans, err := cacheGet(c, "t", 0, policy, value("after-the-delete"))
	require.NoError(t, err)
	require.Equal(t, "after-the-delete", ans.value)
	close(release)
	require.Equal(t, "before-the-delete", (<-done).value)
	ans, _ = cacheGet(c, "t", 0, policy, value("unused"))
	require.Equal(t, "after-the-delete", ans.value, "the older answer was not stored over the newer")

	// Evicting one task leaves another task's fetch shared.
	require.Equal(t, 1, c.len())
}

func TestPanicInAFetchIsAnErrorForItsReaders(t *testing.T) {
	c := newTestCache(newFakeClock())
	_, err := cacheGet(c, "t", 0, cachePolicy{ttl: time.Minute}, func(context.Context) (any, error) { panic("boom") })
	require.ErrorIs(t, err, errInternal)
	ans, err := cacheGet(c, "t", 0, cachePolicy{ttl: time.Minute}, value("fine"))
	require.NoError(t, err)
	require.Equal(t, "fine", ans.value)
}

func TestStaleEntryServedOnlyForTransientFailuresWithinTheWindow(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(clock)
	policy := cachePolicy{ttl: time.Minute, staleIfError: 10 * time.Minute}
	down := func(context.Context) (any, error) {
		return nil, &huawei.Error{Kind: huawei.KindServer, Service: "SMS", Status: 503, Detail: "failed"}
	}
	gone := func(context.Context) (any, error) {
		return nil, &huawei.Error{Kind: huawei.KindNotFound, Service: "SMS", Status: 404, Detail: "has no task"}
	}

	_, err := cacheGet(c, "t", 0, policy, value("cached"))
	require.NoError(t, err)

	clock.Advance(2 * time.Minute) // expired, inside the stale window
	ans, err := cacheGet(c, "t", 0, policy, down)
	require.NoError(t, err)
	require.Equal(t, "cached", ans.value)
	require.NotNil(t, ans.staleFor)
	require.Equal(t, 2*time.Minute, ans.age)

	// A definitive answer (404) is not papered over.
	_, err = cacheGet(c, "t", 0, policy, gone)
	var ue *huawei.Error
	require.True(t, errors.As(err, &ue))
	require.Equal(t, huawei.KindNotFound, ue.Kind)

	clock.Advance(10 * time.Minute) // past cache_ttl + stale_if_error
	_, err = cacheGet(c, "t", 0, policy, down)
	require.Error(t, err)
	require.EqualValues(t, 1, c.stats[kindPassphrase].staleServed.Load())
}

func TestStaleIfErrorWorksWithCachingOff(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(clock)
	policy := cachePolicy{ttl: 0, staleIfError: time.Minute}
	calls := 0
	counted := func(v string) func(context.Context) (any, error) {
		return func(context.Context) (any, error) { calls++; return v, nil }
	}
	_, err := cacheGet(c, "t", 0, policy, counted("v"))
	require.NoError(t, err)
	ans, err := cacheGet(c, "t", 0, policy, counted("v2"))
	require.NoError(t, err)
	require.Equal(t, "v2", ans.value, "with cache_ttl 0 every read goes upstream")
	require.Equal(t, 2, calls)

	ans, err = cacheGet(c, "t", 0, policy, func(context.Context) (any, error) {
		return nil, &huawei.Error{Kind: huawei.KindUnreachable, Service: "SMS", Detail: "could not be reached"}
	})
	require.NoError(t, err)
	require.Equal(t, "v2", ans.value)
	require.NotNil(t, ans.staleFor)
}
