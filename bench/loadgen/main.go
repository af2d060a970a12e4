// Command loadgen drives Vault reads over loopback for scripts/bench.sh.
//
//	loadgen run -addr URL -token T -path P [-ids N] [-clients C] [-duration D | -requests N] -label L
//	    Reads P (or P formatted with an id index when -ids > 0) with C
//	    keep-alive clients; prints one JSON result line.
//	loadgen summarize FILE
//	    Reads result lines, prints medians per label and the ratios.
//	loadgen fake-stats URL
//	    Prints the SMS stand-in's request count.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Label    string  `json:"label"`
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen run|summarize|fake-stats ...")
		os.Exit(2)
	}
	// Ctrl-C cancels the requests in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "summarize":
		err = summarize(os.Args[2:])
	case "fake-stats":
		err = fakeStats(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("addr", "http://127.0.0.1:8200", "Vault address")
	token := fs.String("token", os.Getenv("VAULT_TOKEN"), "Vault token")
	path := fs.String("path", "", "path to read, e.g. sms/passphrase/t1; with -ids, a format with one %d")
	ids := fs.Int("ids", 0, "distinct ids to spread reads over (0: read -path as is)")
	clients := fs.Int("clients", 16, "concurrent keep-alive clients")
	duration := fs.Duration("duration", 5*time.Second, "how long to run (ignored with -requests)")
	requests := fs.Int("requests", 0, "exact number of reads instead of a duration")
	label := fs.String("label", "", "name of this run in the output")
	_ = fs.Parse(args)
	if *path == "" {
		return fmt.Errorf("-path is required")
	}

	transport := &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	urls := []string{*addr + "/v1/" + *path}
	if *ids > 0 {
		urls = make([]string, *ids)
		for i := range urls {
			urls[i] = *addr + "/v1/" + fmt.Sprintf(*path, i)
		}
	}
	// With -requests, every id is read the same number of times, in a shuffled order.
	var order []int
	if *requests > 0 {
		order = rand.Perm(*requests) //nolint:gosec // shuffles the order of benchmark reads; nothing secret
	}

	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, *clients)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if *requests > 0 && n >= *requests || *requests == 0 && time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				u := urls[0]
				if len(urls) > 1 {
					i := n
					if order != nil {
						i = order[n]
					}
					u = urls[i%len(urls)]
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				req.Header.Set("X-Vault-Token", *token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					// Drained, so that the connection is reused; closing a
					// drained body cannot fail in a way that matters here.
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[c] = append(lat[c], time.Since(t0))
				if err != nil {
					errs.Add(1)
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p int) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[(len(all)-1)*p/100].Nanoseconds()) / 1e3
	}
	return json.NewEncoder(os.Stdout).Encode(result{
		Label: *label, Requests: len(all), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		RPS: float64(len(all)) / elapsed.Seconds(), P50us: pct(50), P99us: pct(99),
	})
}

func summarize(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: loadgen summarize FILE")
	}
	f, err := os.Open(args[0]) //nolint:gosec // reads the file its user names on the command line
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose on close
	byLabel := map[string][]result{}
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Label == "" {
			continue
		}
		if _, seen := byLabel[r.Label]; !seen {
			labels = append(labels, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", args[0], err)
	}
	median := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	type row struct{ rps, p50, p99 float64 }
	rows := map[string]row{}
	fmt.Printf("%-22s %6s %12s %10s %10s %7s\n", "target", "rounds", "req/s", "p50 µs", "p99 µs", "errors")
	for _, l := range labels {
		rs := byLabel[l]
		r := row{median(rs, func(r result) float64 { return r.RPS }), median(rs, func(r result) float64 { return r.P50us }),
			median(rs, func(r result) float64 { return r.P99us })}
		rows[l] = r
		var errs int64
		for _, x := range rs {
			errs += x.Errors
		}
		fmt.Printf("%-22s %6d %12.0f %10.0f %10.0f %7d\n", l, len(rs), r.rps, r.p50, r.p99, errs)
	}
	ratio := func(a, b string) {
		ra, okA := rows[a]
		rb, okB := rows[b]
		if okA && okB {
			fmt.Printf("%-26s throughput %.2f   p50 %.2f   p99 %.2f\n", a+" / "+b+":", ra.rps/rb.rps, ra.p50/rb.p50, ra.p99/rb.p99)
		}
	}
	fmt.Println()
	fmt.Println("Ratios of medians (throughput: higher is better; latency: lower is better):")
	ratio("sms-role", "sms")
	ratio("sms", "minimal-plugin")
	ratio("sms", "raw-plugin")
	ratio("sms", "kv")
	ratio("minimal-plugin", "kv")
	ratio("raw-plugin", "kv")
	return nil
}

func fakeStats(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: loadgen fake-stats URL")
	}
	// The stand-in's URL, given on the command line by scripts/bench.sh.
	u := strings.TrimRight(args[0], "/") + "/__fake/stats"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil) //nolint:gosec // G704: the URL is the caller's, on purpose
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // G704: the URL is the caller's, on purpose
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read only: nothing to lose on close
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", req.URL, resp.StatusCode)
	}
	var st struct {
		Requests int64 `json:"requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	fmt.Println(st.Requests)
	return nil
}
