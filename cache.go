package sms

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// kind is a kind of upstream resource of a task that the engine caches.
type kind uint8

const (
	kindPassphrase kind = iota
	numKinds
)

var kindNames = [numKinds]string{"passphrase"}

// cacheKey names one cached answer: a kind of resource of one task, and a
// variant where one resource has several forms.
type cacheKey struct {
	kind    kind
	id      string
	variant string
}

// cache is the engine's one cache of upstream answers: a bounded LRU with
// per-entry freshness, the request coalescing, and counters per kind.
//
// It is golang-lru's plain LRU rather than its expirable variant on purpose:
// expirable.LRU (v2.0.7) starts a goroutine per instance that can never be
// stopped, which would leak one per config change. Expiry is instead decided
// at lookup, which is also what stale_if_error needs: an expired entry stays
// usable as a fallback until cache_ttl + stale_if_error.
type cache struct {
	entries *lru.Cache[cacheKey, entry]
	group   singleflight.Group
	now     func() time.Time
	start   time.Time
	logger  hclog.Logger

	// mu orders stores against evictions and flushes. flights holds the
	// fetch in flight for each key: an eviction marks it stale, so that its
	// answer is not stored, and removes it, so that a read starting after the
	// eviction starts a new upstream call instead of joining the older one.
	mu         sync.Mutex
	epoch      uint64 // bumped by every flush (config changes included)
	flights    map[cacheKey]*flight
	nextFlight uint64

	stats [numKinds]kindStats
}

type kindStats struct {
	hits, misses, staleServed atomic.Uint64
}

type flight struct {
	id    uint64
	stale bool // evicted while in flight: the answer goes to its readers only
}

type entry struct {
	value   any           // immutable, of the kind's own type
	fetched time.Duration // since cache.start; smaller than a time.Time
}

// cachePolicy is the part of the config a lookup needs.
type cachePolicy struct {
	ttl          time.Duration // fresh for this long; 0 disables caching
	staleIfError time.Duration // then usable for this much longer if SMS fails
}

func (p cachePolicy) keep() time.Duration { return p.ttl + p.staleIfError }

func newCache(size int, now func() time.Time, logger hclog.Logger) *cache {
	entries, err := lru.New[cacheKey, entry](size)
	if err != nil {
		panic(err) // only for size <= 0, which config validation rules out
	}
	return &cache{entries: entries, now: now, start: now(), logger: logger, flights: map[cacheKey]*flight{}}
}

func (c *cache) clock() time.Duration { return c.now().Sub(c.start) }

// currentEpoch is taken by a read before it looks at the config, so that a
// config change made during the read makes its answer unstorable.
func (c *cache) currentEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// answer is what a fetch produced.
type answer struct {
	value    any
	staleFor error         // set when an expired entry was served because of this failure
	age      time.Duration // the age of that expired entry
}

// fresh returns the value cached under k if it is younger than cache_ttl,
// and counts the hit. It allocates nothing: it is the whole of a warm read.
func (c *cache) fresh(k cacheKey, p cachePolicy) (any, bool) {
	if p.ttl <= 0 {
		return nil, false
	}
	e, ok := c.entries.Get(k)
	if !ok || c.clock()-e.fetched >= p.ttl {
		return nil, false
	}
	c.stats[k.kind].hits.Add(1)
	return e.value, true
}

// temporary is what a failure must be for a stale entry to stand in for it.
type temporary interface{ Temporary() bool }

// fetch runs after fresh found nothing: it returns the answer of fetchFn,
// shared by every concurrent reader of k, and stores it. When fetchFn fails
// transiently and an entry younger than cache_ttl + stale_if_error exists,
// that entry is returned with staleFor set.
func (c *cache) fetch(ctx context.Context, k cacheKey, epoch uint64, p cachePolicy,
	fetchFn func(context.Context) (any, error)) (answer, error) {
	c.stats[k.kind].misses.Add(1)
	var fallback *answer
	if p.staleIfError > 0 {
		if e, ok := c.entries.Peek(k); ok {
			if age := c.clock() - e.fetched; age < p.keep() {
				fallback = &answer{value: e.value, age: age}
			}
		}
	}

	// Detached from the first reader: if its client goes away, the others
	// still get the answer. The upstream client bounds the call.
	detached := context.WithoutCancel(ctx)
	var ch <-chan singleflight.Result
	c.mu.Lock()
	if epoch != c.epoch {
		// The config changed after this read loaded it: answer it alone, with
		// what it loaded, and keep nothing.
		c.mu.Unlock()
		res := make(chan singleflight.Result, 1)
		go func() {
			v, err := c.run(detached, fetchFn)
			res <- singleflight.Result{Val: v, Err: err}
		}()
		ch = res
	} else {
		f := c.flights[k]
		if f == nil {
			c.nextFlight++
			f = &flight{id: c.nextFlight}
			c.flights[k] = f
		}
		c.mu.Unlock()
		ch = c.group.DoChan(strconv.FormatUint(f.id, 36), func() (any, error) {
			v, err := c.run(detached, fetchFn)
			c.mu.Lock()
			if err == nil && !f.stale && p.keep() > 0 {
				c.entries.Add(k, entry{value: v, fetched: c.clock()})
			}
			if c.flights[k] == f {
				delete(c.flights, k)
			}
			c.mu.Unlock()
			return v, err
		})
	}

	select {
	case res := <-ch:
		if res.Err == nil {
			return answer{value: res.Val}, nil
		}
		var t temporary
		if fallback != nil && errors.As(res.Err, &t) && t.Temporary() {
			c.stats[k.kind].staleServed.Add(1)
			fallback.staleFor = res.Err
			return *fallback, nil
		}
		return answer{}, res.Err
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}

// errInternal is a fetch that panicked: a bug, reported as a 500 for the
// reads that shared it. The process keeps serving.
var errInternal = errors.New("internal error in the engine while fetching from upstream; see Vault's log")

// run calls fetchFn and recovers a panic: under singleflight a panic is
// re-raised in a goroutine nobody can recover, which would end the plugin
// process and every mount it serves. The panic value is not logged: it could
// hold anything, a credential included.
func (c *cache) run(ctx context.Context, fetchFn func(context.Context) (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("recovered from a panic in an upstream fetch", "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
			v, err = nil, errInternal
		}
	}()
	return fetchFn(ctx)
}

// evict drops the entries under keys, and makes fetches of them in flight
// unstorable and unjoinable.
func (c *cache) evict(keys ...cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if f := c.flights[k]; f != nil {
			f.stale = true
			delete(c.flights, k)
		}
		c.entries.Remove(k)
	}
}

// flush drops every entry and makes every fetch in flight unstorable and
// unjoinable.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for k, f := range c.flights {
		f.stale = true
		delete(c.flights, k)
	}
	c.entries.Purge()
}

func (c *cache) resize(size int) { c.entries.Resize(size) }

// removeExpired drops entries too old to be served even as stale, so that
// memory and the reported entry count follow the TTL, not only the size bound.
func (c *cache) removeExpired(p cachePolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	for _, k := range c.entries.Keys() {
		if e, ok := c.entries.Peek(k); ok && now-e.fetched >= p.keep() {
			c.entries.Remove(k)
		}
	}
}

func (c *cache) len() int { return c.entries.Len() }

// lenByKind counts the entries of each kind.
func (c *cache) lenByKind() [numKinds]int {
	var out [numKinds]int
	for _, k := range c.entries.Keys() {
		out[k.kind]++
	}
	return out
}
