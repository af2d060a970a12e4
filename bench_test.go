package sms

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// Benchmarks of the engine's own read path, without Vault around it. The
// end-to-end comparison with Vault's built-in KV and a minimal plugin is
// scripts/bench.sh; both run with `make bench`.

type benchEnv struct {
	b       *backend
	storage logical.Storage
	fake    *smsfake.Server
	srv     *httptest.Server
}

func newBenchEnv(tb testing.TB, cfg map[string]any) *benchEnv {
	tb.Helper()
	return newBenchEnvWith(tb, nil, cfg)
}

// Agency benchmarks: the engine signs with a permanent access key of a user
// that may assume an agency of another account.
const (
	benchAgency  = "sms-reader"
	benchAccount = "team-account"
)

// agencyBench is what the agency benchmarks change: a stand-in with an
// agency trusting the access key's account, a config with that key, and a
// role through the agency alone.
func agencyBench(o *smsfake.Options) {
	o.AccessKeys = map[string]string{testAccessKey: testSecretKey}
	o.Agencies = []smsfake.Agency{{Name: benchAgency, Domain: benchAccount, Trusted: []string{"key-domain"}}}
}

var (
	agencyConfig = map[string]any{"token": "", "access_key": testAccessKey, "secret_key": testSecretKey}
	agencyRole   = map[string]any{"agency_name": benchAgency, "agency_domain_name": benchAccount}
)

func newBenchEnvWith(tb testing.TB, tune func(*smsfake.Options), cfg map[string]any) *benchEnv {
	tb.Helper()
	opts := smsfake.Options{Tokens: []string{testToken}, AnyTask: true}
	if tune != nil {
		tune(&opts)
	}
	fake := smsfake.New(opts)
	srv := httptest.NewServer(fake)
	tb.Cleanup(srv.Close)

	b := newBackend(hclog.NewNullLogger(), time.Now)
	if err := b.Setup(context.Background(), logical.TestBackendConfig()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Clean(context.Background()) })
	env := &benchEnv{b: b, storage: &logical.InmemStorage{}, fake: fake, srv: srv}
	data := map[string]any{"endpoint": srv.URL, "iam_endpoint": srv.URL, "token": testToken}
	for k, v := range cfg {
		data[k] = v
	}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "config", Data: data, Storage: env.storage,
	})
	if err != nil || resp.IsError() {
		tb.Fatalf("config: %v %v", err, resp)
	}
	return env
}

func (e *benchEnv) read(tb testing.TB, taskID string) {
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "passphrase/" + taskID, Storage: e.storage, MountPoint: "sms/",
	})
	if err != nil || resp == nil || resp.Data["passphrase"] != "passphrase-of-"+taskID {
		tb.Fatalf("read %s: %v %v", taskID, err, resp)
	}
}

// BenchmarkCachedRead is one read answered from the cache: the path every
// warm Vault Agent takes.
func BenchmarkCachedRead(b *testing.B) {
	env := newBenchEnv(b, nil)
	req := &logical.Request{Operation: logical.ReadOperation, Path: "passphrase/" + testTask, Storage: env.storage, MountPoint: "sms/"}
	env.read(b, testTask)
	b.ReportAllocs()
	b.ResetTimer()
	readLoop(b, env.b, b.N, req)
}

// readLoop is the measured loop of the cached-read benchmarks: a function
// of its own, so that scripts/bench-instructions.sh counts the instructions
// of these reads and nothing else.
//
//go:noinline
func readLoop(b *testing.B, be *backend, n int, reqs ...*logical.Request) {
	for i := 0; i < n; i++ {
		req := reqs[i%len(reqs)]
		req.Data = nil
		resp, err := be.HandleRequest(context.Background(), req)
		if err != nil || resp.Data["passphrase"] == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedReadParallel is the same under concurrency, over 1,000 tasks.
func BenchmarkCachedReadParallel(b *testing.B) {
	env := newBenchEnv(b, nil)
	paths := make([]string, 1000)
	for i := range paths {
		id := fmt.Sprintf("task-%04d", i)
		paths[i] = "passphrase/" + id
		env.read(b, id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One request per goroutine, as in BenchmarkCachedRead: building it is
		// Vault's work, not the engine's.
		req := &logical.Request{Operation: logical.ReadOperation, Storage: env.storage, MountPoint: "sms/"}
		i := 0
		for pb.Next() {
			req.Path = paths[i%len(paths)]
			resp, err := env.b.HandleRequest(context.Background(), req)
			if err != nil || resp.Data["passphrase"] == nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkColdRead is a read that goes to the local stand-in every time
// (cache_ttl 0), next to a plain GET of the same URL with the same kind of
// keep-alive client in the same process: the difference is what the engine
// adds to SMS's own latency.
func BenchmarkColdRead(b *testing.B) {
	env := newBenchEnv(b, map[string]any{"cache_ttl": 0})
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer plain.CloseIdleConnections()
	direct := func() {
		req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/v3/tasks/"+testTask+"/passphrase", nil)
		req.Header.Set("X-Auth-Token", testToken)
		resp, err := plain.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = resp.Body.Read(make([]byte, 512))
		resp.Body.Close()
	}
	engine := func() { env.read(b, testTask) }

	const rounds = 4
	n := max(b.N/(2*rounds), 50)
	var directLat, engineLat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	// Alternate, so that noise from other processes falls on both alike.
	for r := 0; r < rounds; r++ {
		directLat = append(directLat, timeEach(n, direct)...)
		engineLat = append(engineLat, timeEach(n, engine)...)
	}
	b.StopTimer()
	dp50, ep50 := percentile(directLat, 50), percentile(engineLat, 50)
	b.ReportMetric(float64(dp50.Microseconds()), "stand-in-p50-µs")
	b.ReportMetric(float64(ep50.Microseconds()), "engine-p50-µs")
	b.ReportMetric(float64((ep50 - dp50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64(percentile(engineLat, 99).Microseconds()), "engine-p99-µs")
}

func timeEach(n int, f func()) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		f()
		out[i] = time.Since(start)
	}
	return out
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// BenchmarkCache100k reports the heap taken by 100,000 cached passphrases of
// a realistic size (UUID task ids, 32-character passphrases).
func BenchmarkCache100k(b *testing.B) {
	const entries = 100000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		c := newCache(entries, time.Now, hclog.NewNullLogger())
		policy := cachePolicy{ttl: time.Hour}
		for j := 0; j < entries; j++ {
			id := fmt.Sprintf("%08x-1b4d-4c8a-9e7f-6a5b4c3d2e10", j)
			pv := &passphraseValue{taskID: id, passphrase: fmt.Sprintf("%032x", j)}
			if _, err := c.fetch(context.Background(), passphraseKey(id, nil), 0, policy, nil, value(pv)); err != nil {
				b.Fatal(err)
			}
		}

		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if c.lenByKind()[kindPassphrase] != entries {
			b.Fatalf("%d entries", c.lenByKind()[kindPassphrase])
		}
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/entries, "bytes/entry")
		b.ReportMetric(heap/(1<<20), "MiB")
		runtime.KeepAlive(c)
	}
}

// BenchmarkCachedReadViaRole is BenchmarkCachedRead through a role (scope
// check on cached metadata, then the cached passphrase), alone, for
// instruction counts (scripts/bench-instructions.sh). ROLE_SIZE=large uses
// the large role of BenchmarkCachedRoleRead; ROLE_SIZE=alternating reads
// through two such roles in turn, so that every read matches;
// ROLE_SIZE=agency reads through a role bounded by a Huawei agency alone.
func BenchmarkCachedReadViaRole(b *testing.B) {
	var env *benchEnv
	data := map[string]any{"enterprise_project_ids": "0", "task_name_globs": "any-*"}
	names := []string{"team-a"}
	if os.Getenv("ROLE_SIZE") == "agency" {
		env, data = newBenchEnvWith(b, agencyBench, agencyConfig), agencyRole
	} else {
		env = newBenchEnv(b, nil)
	}
	switch os.Getenv("ROLE_SIZE") {
	case "large":
		data = largeRole()
	case "alternating":
		data = largeRole()
		names = append(names, "team-b")
	}
	var reqs []*logical.Request
	for _, name := range names {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
			Path: "roles/" + name, Data: data, Storage: env.storage})
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
		req := &logical.Request{Operation: logical.ReadOperation, Path: "roles/" + name + "/passphrase/" + testTask, Storage: env.storage, MountPoint: "sms/"}
		if _, err := env.b.HandleRequest(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	readLoop(b, env.b, b.N, reqs...)
}

// BenchmarkCachedRoleRead compares, in the same process and alternating, a
// cached read through a role (scope check on cached metadata, then the
// cached passphrase) with a cached direct read of the same task. It reports
// both costs and their ratio; the target is at most 1.1. "simple" is a role
// with one enterprise project and one glob; "large" is one of 30 roles,
// with 10 enterprise projects and 20 globs, the task matching the last of
// each. A task's metadata remembers the last role that admitted it, so these
// repeat reads skip the matching; "large-alternating" reads the task through
// two large roles in turn, so that every read matches: the worst case.
func BenchmarkCachedRoleRead(b *testing.B) {
	write := func(env *benchEnv, name string, data map[string]any) {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
			Path: "roles/" + name, Data: data, Storage: env.storage})
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
	}
	b.Run("simple", func(b *testing.B) {
		env := newBenchEnv(b, nil)
		write(env, "team-a", map[string]any{"enterprise_project_ids": "0", "task_name_globs": "any-*"})
		benchRoleAgainstDirect(b, env, "team-a")
	})
	b.Run("agency", func(b *testing.B) {
		// The direct reads use the mount's own key, the role's reads the
		// agency's temporary credentials: each identity has its own cache.
		env := newBenchEnvWith(b, agencyBench, agencyConfig)
		write(env, "team-a", agencyRole)
		benchRoleAgainstDirect(b, env, "team-a")
	})
	b.Run("large", func(b *testing.B) {
		env := newBenchEnv(b, nil)
		for r := 0; r < 30; r++ {
			write(env, fmt.Sprintf("team-%02d", r), largeRole())
		}
		benchRoleAgainstDirect(b, env, "team-29")
	})
	b.Run("large-alternating", func(b *testing.B) {
		env := newBenchEnv(b, nil)
		for r := 0; r < 30; r++ {
			write(env, fmt.Sprintf("team-%02d", r), largeRole())
		}
		benchRoleAgainstDirect(b, env, "team-28", "team-29")
	})
}

// largeRole has 10 enterprise projects and 20 globs; the benchmark task
// matches the last of each.
func largeRole() map[string]any {
	var eps, globs []any
	for i := 9; i >= 1; i-- {
		eps = append(eps, fmt.Sprintf("ep-%02d-5d2e7f1c", i))
	}
	for i := 19; i >= 1; i-- {
		globs = append(globs, fmt.Sprintf("team-%02d-*", i))
	}
	return map[string]any{"enterprise_project_ids": append(eps, "0"), "task_name_globs": append(globs, "any-*")}
}

// benchRoleAgainstDirect alternates batches of direct reads with batches of
// reads through the roles, taken in turn.
func benchRoleAgainstDirect(b *testing.B, env *benchEnv, roles ...string) {
	direct := []*logical.Request{{Operation: logical.ReadOperation, Path: "passphrase/" + testTask, Storage: env.storage, MountPoint: "sms/"}}
	var viaRole []*logical.Request
	for _, role := range roles {
		viaRole = append(viaRole, &logical.Request{Operation: logical.ReadOperation, Path: "roles/" + role + "/passphrase/" + testTask, Storage: env.storage, MountPoint: "sms/"})
	}
	batch := func(reqs []*logical.Request, n int) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			resp, err := env.b.HandleRequest(context.Background(), reqs[i%len(reqs)])
			if err != nil || resp.Data["passphrase"] == nil {
				b.Fatal(err, resp)
			}
		}
		return time.Since(start)
	}
	batch(direct, 10)
	batch(viaRole, 10) // fills the metadata cache

	const rounds = 10
	n := max(b.N/(2*rounds), 1000)
	var directTime, roleTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	// Alternate, so that noise from other processes falls on both alike.
	for r := 0; r < rounds; r++ {
		directTime += batch(direct, n)
		roleTime += batch(viaRole, n)
	}
	b.StopTimer()
	reads := float64(rounds * n)
	b.ReportMetric(float64(directTime.Nanoseconds())/reads, "direct-ns/read")
	b.ReportMetric(float64(roleTime.Nanoseconds())/reads, "role-ns/read")
	b.ReportMetric(float64(roleTime)/float64(directTime), "role/direct")
}
