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
	kindTask            // metadata: name, enterprise project, state
	kindCertKey         // certificate and keys, without the CA
	kindCertKeyCA       // the same asked with enable_ca_cert: a separate answer
	numKinds
)

// cacheKey names one cached answer: a kind of resource of one task, as
// fetched by one identity (sp; nil is the mount's own credential).
type cacheKey struct {
	kind kind
	id   string
	sp   *space
}

// cache is the engine's one cache of upstream answers: a bounded LRU of
// tasks, each with a slot per kind of resource, plus the request coalescing
// and counters per kind. One record per task means a read through a role
// (metadata, then passphrase) costs one LRU lookup, as a direct read does,
// and that evicting a task evicts all it holds.
//
// Records are made only for a task's secrets (passphrase, certkey). Task
// metadata, and the markers of tasks SMS will not show, stay in a second
// LRU of their own bound (meta) until their task has a record, and only
// then move into it: a team reading made-up ids through its role fills
// meta, and can never evict another team's passphrases or certkeys.
//
// It is golang-lru's plain LRU rather than its expirable variant on purpose:
// expirable.LRU (v2.0.7) starts a goroutine per instance that can never be
// stopped, which would leak one per config change. Expiry is instead decided
// at lookup, which is also what stale_if_error needs: an expired entry stays
// usable as a fallback until cache_ttl + stale_if_error.
type cache struct {
	// The embedded space holds what the mount's own credential fetched;
	// spaces, what each agency's temporary credentials fetched.
	*space
	spaces map[string]*space // by agency identity; under mu
	size   int               // each space's bound; under mu

	group  singleflight.Group
	now    func() time.Time
	start  time.Time
	logger hclog.Logger

	// mu orders stores against evictions and flushes. flights holds the
	// fetch in flight for each key: an eviction marks it stale, so that its
	// answer is not stored, and removes it, so that a read starting after the
	// eviction starts a new upstream call instead of joining the older one.
	mu    sync.Mutex
	epoch atomic.Uint64 // bumped by every flush (config changes included), under mu
	// evictions is bumped, under mu, by every eviction of a task and every
	// flush: a role read that waited compares it with what it saw before
	// its first look, to be judged again if what admitted it may be gone.
	evictions  atomic.Uint64
	flights    map[cacheKey]*flight
	nextFlight uint64

	stats [numKinds]kindStats
}

// space is the cache of one upstream identity: answers fetched with one
// credential are served only to reads made through that credential, so
// that Huawei IAM decides the first access of every identity. Each space
// has its own bounds: a team reading made-up ids through its agency can
// evict only its own entries.
type space struct {
	tasks *lru.Cache[string, *record]
	meta  *lru.Cache[string, *entry] // kindTask entries of tasks without a record
}

func newSpace(size int) *space {
	tasks, err := lru.New[string, *record](size)
	if err != nil {
		panic(err) // only for size <= 0, which config validation rules out
	}
	meta, _ := lru.New[string, *entry](size)
	return &space{tasks: tasks, meta: meta}
}

// spaceFor returns the space of an agency identity, made on first use. A
// space lives as long as a role this node knows names its agency (roles keep
// pointers to it; see releaseSpace); a flush empties it.
func (c *cache) spaceFor(identity string) *space {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sp := c.spaces[identity]; sp != nil {
		return sp
	}
	sp := newSpace(c.size)
	c.spaces[identity] = sp
	return sp
}

// releaseSpace forgets the space of an agency identity that no role names
// any more, emptying it: reads still in flight through a role that named it
// may store in it, and nothing serves them again.
func (c *cache) releaseSpace(identity string, sp *space) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sp == nil || c.spaces[identity] != sp {
		return
	}
	delete(c.spaces, identity)
	sp.tasks.Purge()
	sp.meta.Purge()
}

// all calls fn for every space. The caller holds c.mu.
func (c *cache) all(fn func(*space)) {
	fn(c.space)
	for _, sp := range c.spaces {
		fn(sp)
	}
}

// of resolves a key's space.
func (c *cache) of(k cacheKey) *space {
	if k.sp != nil {
		return k.sp
	}
	return c.space
}

// record is what the cache holds of one task: a slot per kind, each
// replaced whole (never changed) so that readers need no lock.
type record struct {
	slots [numKinds]atomic.Pointer[entry]
}

type entry struct {
	value   any           // immutable, of the kind's own type
	fetched time.Duration // since cache.start; smaller than a time.Time
	until   time.Duration // when not 0: never served from here on (a certificate's NotAfter)
	// admitted is, for task metadata, the last role found to allow the
	// task (see admits).
	admitted atomic.Pointer[role]
}

// expiring is a value that must not be served past a time of its own.
type expiring interface{ notAfter() time.Time }

// usable reports whether an entry may be served at now, fresh or stale.
func (e *entry) usable(now time.Duration) bool { return e.until == 0 || now < e.until }

type kindStats struct {
	hits, misses, staleServed atomic.Uint64
}

type flight struct {
	id    uint64
	stale bool // evicted while in flight: the answer goes to its readers only
}

// cachePolicy is the part of the config a lookup needs.
type cachePolicy struct {
	ttl          time.Duration // fresh for this long; 0 disables caching
	staleIfError time.Duration // then usable for this much longer if SMS fails
}

func (p cachePolicy) keep() time.Duration { return p.ttl + p.staleIfError }

func newCache(size int, now func() time.Time, logger hclog.Logger) *cache {
	return &cache{space: newSpace(size), spaces: map[string]*space{}, size: size,
		now: now, start: now(), logger: logger, flights: map[cacheKey]*flight{}}
}

func (c *cache) clock() time.Duration { return c.now().Sub(c.start) }

// currentEpoch is taken by a read before it looks at the config, so that a
// config change made during the read makes its answer unstorable.
func (c *cache) currentEpoch() uint64 { return c.epoch.Load() }

// view is one read's look at a task's record in one space: one LRU lookup
// and one clock reading, however many kinds the read then needs.
type view struct {
	c   *cache
	sp  *space
	rec *record
	now time.Duration
	ttl time.Duration
}

// view looks up a task in the mount's own space, refreshing its place in
// the LRU.
func (c *cache) view(id string, p cachePolicy) view { return c.viewIn(c.space, id, p) }

// viewIn looks up a task in a space (nil: the mount's own).
func (c *cache) viewIn(sp *space, id string, p cachePolicy) view {
	if p.ttl <= 0 {
		return view{}
	}
	if sp == nil {
		sp = c.space
	}
	rec, _ := sp.tasks.Get(id)
	return view{c: c, sp: sp, rec: rec, now: c.clock(), ttl: p.ttl}
}

// fresh returns the value of kind k if it is younger than cache_ttl, and
// counts the hit. It allocates nothing: it is the whole of a warm read.
func (v view) fresh(k kind) (any, bool) {
	if e := v.freshEntry(k); e != nil {
		return e.value, true
	}
	return nil, false
}

// freshMeta is freshEntry(kindTask), looking in meta too: the slow path of
// a scope check.
func (v view) freshMeta(id string) *entry {
	if e := v.freshEntry(kindTask); e != nil || v.c == nil || v.rec != nil {
		return e // a task with a record keeps its metadata in it
	}
	e, ok := v.sp.meta.Get(id)
	if !ok || v.now-e.fetched >= v.ttl || !e.usable(v.now) {
		return nil
	}
	v.c.stats[kindTask].hits.Add(1)
	return e
}

// freshEntry is fresh, returning the entry itself.
func (v view) freshEntry(k kind) *entry {
	if v.rec == nil {
		return nil
	}
	e := v.rec.slots[k].Load()
	if e == nil || v.now-e.fetched >= v.ttl || !e.usable(v.now) {
		return nil
	}
	v.c.stats[k].hits.Add(1)
	return e
}

// answer is what a fetch produced.
type answer struct {
	value    any
	staleFor error         // set when an expired entry was served because of this failure
	age      time.Duration // the age of that expired entry
}

// temporary is what a failure must be for a stale entry to stand in for it.
type temporary interface{ Temporary() bool }

// fetch runs after fresh found nothing: it returns the answer of fetchFn,
// shared by every concurrent reader of k, and stores it. When fetchFn fails
// transiently and an entry younger than cache_ttl + stale_if_error exists,
// that entry is returned with staleFor set. spend, when not nil, is the
// budget of the role the read is made through: it pays for a fetch this
// reader starts, and for nothing else.
func (c *cache) fetch(ctx context.Context, k cacheKey, epoch uint64, p cachePolicy, spend *budget,
	fetchFn func(context.Context) (any, error)) (answer, error) {
	c.stats[k.kind].misses.Add(1)
	var fallback *entry
	if p.staleIfError > 0 {
		fallback = c.peek(k)
	}

	// Detached from the first reader: if its client goes away, the others
	// still get the answer. The upstream client bounds the call.
	detached := context.WithoutCancel(ctx)
	var ch <-chan singleflight.Result
	paid := spend == nil
	// When this reader paid for its fetch, request_timeout bounds the wait
	// and the fetch together: the fetch ends by the wait's deadline.
	var deadline time.Time
	bounded := func(ctx context.Context) (any, error) {
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		return c.run(ctx, fetchFn)
	}
	for ch == nil {
		c.mu.Lock()
		var f *flight
		if epoch == c.epoch.Load() {
			f = c.flights[k]
			if f == nil && p.ttl > 0 {
				// A flight may have stored its answer and ended between this
				// reader's miss and now: take that answer rather than ask again.
				if e := c.peek(k); e != nil {
					if now := c.clock(); now-e.fetched < p.ttl && e.usable(now) {
						c.mu.Unlock()
						return answer{value: e.value}, nil
					}
				}
			}
		}
		if f == nil && !paid {
			// This reader starts an upstream call: its role pays first,
			// outside the lock and before the flight exists, so that no
			// reader joining it waits on this role's budget.
			c.mu.Unlock()
			var err error
			if deadline, err = spend.take(ctx); err != nil {
				return c.failed(k, p, fallback, err)
			}
			paid = true
			continue // the world may have moved on while it waited
		}
		if epoch != c.epoch.Load() {
			// The config changed after this read loaded it: answer it alone,
			// with what it loaded, and keep nothing.
			c.mu.Unlock()
			res := make(chan singleflight.Result, 1)
			go func() {
				v, err := bounded(detached)
				res <- singleflight.Result{Val: v, Err: err}
			}()
			ch = res
			break
		}
		if f == nil {
			c.nextFlight++
			f = &flight{id: c.nextFlight}
			c.flights[k] = f
		}
		c.mu.Unlock()
		ch = c.group.DoChan(strconv.FormatUint(f.id, 36), func() (any, error) {
			v, err := bounded(detached)
			c.mu.Lock()
			if err == nil && !f.stale && p.keep() > 0 {
				c.store(k, v)
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
		return c.failed(k, p, fallback, res.Err)
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}

// failed answers a read whose fetch failed: with the fallback entry when
// the failure is temporary and the entry still within stale_if_error.
func (c *cache) failed(k cacheKey, p cachePolicy, fallback *entry, err error) (answer, error) {
	var t temporary
	if fallback != nil && errors.As(err, &t) && t.Temporary() {
		// Judged when the failure is known, not when the read began: a slow
		// failure must not carry an entry past its window or its
		// certificate's NotAfter.
		now := c.clock()
		if age := now - fallback.fetched; age < p.keep() && fallback.usable(now) {
			c.stats[k.kind].staleServed.Add(1)
			return answer{value: fallback.value, staleFor: err, age: age}, nil
		}
	}
	return answer{}, err
}

// store puts a value in its task's record, unless it may no longer be
// served. The caller holds c.mu.
func (c *cache) store(k cacheKey, v any) {
	e := &entry{value: v, fetched: c.clock()}
	if x, ok := v.(expiring); ok {
		if t := x.notAfter(); !t.IsZero() {
			if e.until = t.Sub(c.start); e.until <= e.fetched {
				return
			}
		}
	}
	sp := c.of(k)
	rec, ok := sp.tasks.Peek(k.id)
	if !ok {
		if k.kind == kindTask {
			sp.meta.Add(k.id, e)
			return
		}
		rec = &record{}
		if m, ok := sp.meta.Peek(k.id); ok {
			rec.slots[kindTask].Store(m)
			sp.meta.Remove(k.id)
		}
		sp.tasks.Add(k.id, rec)
	}
	rec.slots[k.kind].Store(e)
}

// peek returns the entry of k without refreshing anything, wherever it is.
func (c *cache) peek(k cacheKey) *entry {
	sp := c.of(k)
	if rec, ok := sp.tasks.Peek(k.id); ok {
		if e := rec.slots[k.kind].Load(); e != nil || k.kind != kindTask {
			return e
		}
	}
	if k.kind == kindTask {
		if e, ok := sp.meta.Peek(k.id); ok {
			return e
		}
	}
	return nil
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

// evictTask drops everything cached of a task, in every space, and makes
// its fetches in flight unstorable and unjoinable.
func (c *cache) evictTask(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictions.Add(1)
	for k, f := range c.flights {
		if k.id == id {
			f.stale = true
			delete(c.flights, k)
		}
	}
	c.all(func(sp *space) {
		sp.tasks.Remove(id)
		sp.meta.Remove(id)
	})
}

// flush drops every entry and makes every fetch in flight unstorable and
// unjoinable.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	c.evictions.Add(1)
	for k, f := range c.flights {
		f.stale = true
		delete(c.flights, k)
	}
	c.all(func(sp *space) {
		sp.tasks.Purge()
		sp.meta.Purge()
	})
}

// resize bounds records and meta alike, in each space: each to
// cache_max_entries.
func (c *cache) resize(size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size = size
	c.all(func(sp *space) {
		sp.tasks.Resize(size)
		sp.meta.Resize(size)
	})
}

// removeExpired drops entries too old to be served even as stale, so that
// memory and the reported entry counts follow the TTL, not only the size
// bound.
func (c *cache) removeExpired(p cachePolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	c.all(func(sp *space) { sp.removeExpired(now, p) })
}

func (sp *space) removeExpired(now time.Duration, p cachePolicy) {
	for _, id := range sp.tasks.Keys() {
		rec, ok := sp.tasks.Peek(id)
		if !ok {
			continue
		}
		empty := true
		for k := range rec.slots {
			if e := rec.slots[k].Load(); e != nil {
				if now-e.fetched >= p.keep() || !e.usable(now) {
					rec.slots[k].Store(nil)
				} else {
					empty = false
				}
			}
		}
		if empty {
			sp.tasks.Remove(id)
		}
	}
	for _, id := range sp.meta.Keys() {
		if e, ok := sp.meta.Peek(id); ok && (now-e.fetched >= p.keep() || !e.usable(now)) {
			sp.meta.Remove(id)
		}
	}
}

// lenByKind counts the entries of each kind, in every space.
func (c *cache) lenByKind() [numKinds]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [numKinds]int
	c.all(func(sp *space) {
		for _, id := range sp.tasks.Keys() {
			if rec, ok := sp.tasks.Peek(id); ok {
				for k := range rec.slots {
					if rec.slots[k].Load() != nil {
						out[k]++
					}
				}
			}
		}
		out[kindTask] += sp.meta.Len()
	})
	return out
}
