//go:build integration

package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

const (
	loadReads   = 10000
	loadClients = 64
	loadTasks   = 1000
)

// loadRun reads loadReads times over loadTasks ids with loadClients
// concurrent clients and returns the number of failed reads and of reads
// that carried a warning.
func loadRun(t *testing.T, v *vaultServer, mount string) (failed, warned int64) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = v.addr
	cfg.MaxRetries = 0
	cfg.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = loadClients
	client, err := api.NewClient(cfg)
	require.NoError(t, err)
	client.SetToken(v.rootToken)

	ids := make(chan string, loadReads)
	for _, i := range rand.Perm(loadReads) {
		ids <- fmt.Sprintf("load-task-%04d", i%loadTasks)
	}
	close(ids)

	var fails, warnings atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for c := 0; c < loadClients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				s, err := client.Logical().Read(mount + "/passphrase/" + id)
				if err != nil || s == nil || s.Data["passphrase"] != "passphrase-of-"+id {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", id, err))
					continue
				}
				if len(s.Warnings) > 0 {
					warnings.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		t.Logf("first failure: %s", e)
	}
	return fails.Load(), warnings.Load()
}

// TestLoadUpstreamRequestsEqualDistinctTasks: 10,000 reads through a real
// Vault, 64 clients, 1,000 task ids: no error, and exactly one upstream
// request per id. Then, with SMS failing throughout and stale_if_error set,
// every cached task keeps being served.
func TestLoadUpstreamRequestsEqualDistinctTasks(t *testing.T) {
	v := newVault(t, "load")
	fake := startFake(t, smsfake.Options{Tokens: []string{smsToken}, AnyTask: true})
	v.mount("sms", fake, smsToken)

	start := time.Now()
	failed, _ := loadRun(t, v, "sms")
	elapsed := time.Since(start)
	require.Zero(t, failed)
	require.EqualValues(t, loadTasks, fake.Stats().Requests, "upstream requests must equal distinct task ids")
	t.Logf("%d reads by %d clients in %s (%.0f reads/s), %d upstream requests",
		loadReads, loadClients, elapsed.Round(time.Millisecond), loadReads/elapsed.Seconds(), fake.Stats().Requests)

	// Now SMS fails for the whole run. Entries expire after 1 s but may be
	// served for 10 more minutes while SMS is down.
	v.root("write", "sms/config", "cache_ttl=1s", "stale_if_error=10m", "max_retries=0")
	loadRun(t, v, "sms") // refill the cache flushed by the config write
	refilled := time.Now()
	require.NoError(t, fake.AddFault(smsfake.Fault{Mode: smsfake.FaultStatus, Status: 503}))
	probe := v.api(v.rootToken)
	waitFor(t, 30*time.Second, "every cached entry to pass its 1 s TTL", func() bool {
		if time.Since(refilled) < 1100*time.Millisecond {
			return false
		}
		s, err := probe.Logical().Read("sms/passphrase/load-task-0000")
		return err == nil && s != nil && len(s.Warnings) > 0
	})

	failed, warned := loadRun(t, v, "sms")
	require.Zero(t, failed, "cached tasks must keep being served while SMS is down")
	require.EqualValues(t, loadReads, warned, "each stale answer carries a warning")
	stats, err := v.readJSON(v.rootToken, "sms/cache")
	require.NoError(t, err)
	require.GreaterOrEqual(t, stats["stale_served"].(float64), float64(loadReads))
}
