package sms

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// passphraseCache is a bounded LRU of passphrases with per-entry freshness,
// plus the request coalescing and the counters sms/cache reports.
//
// It is golang-lru's plain LRU rather than its expirable variant on purpose:
// expirable.LRU (v2.0.7) starts a goroutine per instance that can never be
// stopped, which would leak one per config change. Expiry is instead decided
// at lookup, which is also what stale_if_error needs: an expired entry stays
// usable as a fallback until cache_ttl + stale_if_error.
type passphraseCache struct {
	entries *lru.Cache[string, cacheEntry]
	group   singleflight.Group
	now     func() time.Time
	start   time.Time

	// writeMu orders stores against flushes, so that an answer fetched under
	// an old config (or before a flush) is never stored after it.
	writeMu sync.Mutex
	epoch   atomic.Uint64

	hits, misses, staleServed atomic.Uint64
}

type cacheEntry struct {
	// The task id and passphrase are kept as interface values, boxed once when
	// stored, so that a cache hit builds its response without allocating them.
	taskID     any
	passphrase any
	fetched    time.Duration // since cache.start; smaller than a time.Time
}

// cachePolicy is the part of the config a lookup needs.
type cachePolicy struct {
	ttl          time.Duration // fresh for this long; 0 disables caching
	staleIfError time.Duration // then usable for this much longer if SMS fails
}

func (p cachePolicy) keep() time.Duration { return p.ttl + p.staleIfError }

func newPassphraseCache(size int, now func() time.Time) *passphraseCache {
	entries, err := lru.New[string, cacheEntry](size)
	if err != nil {
		panic(err) // only for size <= 0, which config validation rules out
	}
	return &passphraseCache{entries: entries, now: now, start: now()}
}

func (c *passphraseCache) clock() time.Duration { return c.now().Sub(c.start) }

// currentEpoch is taken by a read before it looks at the config, so that a
// config change made during the read makes its answer unstorable.
func (c *passphraseCache) currentEpoch() uint64 { return c.epoch.Load() }

// answer is what a fetch produced.
type answer struct {
	passphrase string
	staleFor   *upstreamError // set when an expired entry was served because of this failure
	age        time.Duration  // the age of that expired entry
}

// fresh returns the entry of taskID if it is younger than cache_ttl, and
// counts the hit. It allocates nothing: it is the whole of a warm read.
func (c *passphraseCache) fresh(taskID string, p cachePolicy) (cacheEntry, bool) {
	if p.ttl <= 0 {
		return cacheEntry{}, false
	}
	e, ok := c.entries.Get(taskID)
	if !ok || c.clock()-e.fetched >= p.ttl {
		return cacheEntry{}, false
	}
	c.hits.Add(1)
	return e, true
}

// fetch runs after fresh found nothing: it returns the answer of fetchFn,
// shared by every concurrent caller of the same task, and stores it. When
// fetchFn fails transiently and an entry younger than cache_ttl +
// stale_if_error exists, that entry is returned with staleFor set.
func (c *passphraseCache) fetch(ctx context.Context, taskID string, epoch uint64, p cachePolicy,
	fetchFn func(context.Context) (string, error)) (answer, error) {
	c.misses.Add(1)
	var fallback *answer
	if p.staleIfError > 0 {
		if e, ok := c.entries.Peek(taskID); ok {
			if age := c.clock() - e.fetched; age < p.keep() {
				fallback = &answer{passphrase: e.passphrase.(string), age: age}
			}
		}
	}

	// The epoch is part of the key so that a read after a flush or a config
	// change never joins a call made under the old one.
	key := strconv.FormatUint(epoch, 36) + "/" + taskID
	ch := c.group.DoChan(key, func() (any, error) {
		// Detached from the first caller: if its client goes away, the others
		// still get the answer. The client bounds the call with request_timeout.
		v, err := fetchFn(context.WithoutCancel(ctx))
		if err == nil && p.keep() > 0 {
			c.store(taskID, epoch, v)
		}
		return v, err
	})
	select {
	case res := <-ch:
		if res.Err == nil {
			return answer{passphrase: res.Val.(string)}, nil
		}
		var ue *upstreamError
		if fallback != nil && errors.As(res.Err, &ue) && ue.retryable() {
			c.staleServed.Add(1)
			fallback.staleFor = ue
			return *fallback, nil
		}
		return answer{}, res.Err
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}

func (c *passphraseCache) store(taskID string, epoch uint64, passphrase string) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.epoch.Load() == epoch {
		c.entries.Add(taskID, cacheEntry{taskID: taskID, passphrase: passphrase, fetched: c.clock()})
	}
}

// evict drops one task's entry.
func (c *passphraseCache) evict(taskID string) { c.entries.Remove(taskID) }

// flush drops every entry and makes answers still in flight unstorable.
func (c *passphraseCache) flush() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.epoch.Add(1)
	c.entries.Purge()
}

func (c *passphraseCache) resize(size int) { c.entries.Resize(size) }

// removeExpired drops entries too old to be served even as stale, so that
// memory and the reported entry count follow the TTL, not only the size bound.
func (c *passphraseCache) removeExpired(p cachePolicy) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	now := c.clock()
	for _, k := range c.entries.Keys() {
		if e, ok := c.entries.Peek(k); ok && now-e.fetched >= p.keep() {
			c.entries.Remove(k)
		}
	}
}

func (c *passphraseCache) len() int { return c.entries.Len() }
