// Package bench drives a complete single-node oms (embedded NATS with file
// storage, the node, the simulated providers at full speed) through the
// whole order lifecycle and measures it: `oms bench` is a thin CLI over Run.
//
// It may import node and what a client of a node uses (api, client, config,
// jetstream, simulator, the domain).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/bench/latency"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/internal/heap"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/node"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/simulator"
)

// Options shape one run.
type Options struct {
	Orders         int
	Rate           float64 // orders per second; 0: as fast as possible
	Concurrency    int
	SKUs           int
	Lines          int // lines per order
	PaymentFailure float64
	Partitions     int
	// Tuning is the node's, as oms serve's flags of the same names set it
	// (nil: oms serve's defaults), so that a run can measure what a
	// setting costs or saves before an operator changes it.
	Tuning  *config.Tuning
	DataDir string // empty: a temporary directory, removed afterwards
	// Server, when set, drives a running deployment at this NATS URL
	// instead of starting a node; it must run the simulated providers.
	Server string
	// Connect authenticates the load generator to Server (the local node's
	// admin otherwise).
	Connect  []nats.Option
	Progress io.Writer // nil: no progress line
	Timeout  time.Duration
}

// Result is what a run measured. Latencies are in milliseconds.
type Result struct {
	Revision           string  `json:"revision"`
	Orders             int     `json:"orders"`
	Rate               float64 `json:"rate"`
	Concurrency        int     `json:"concurrency"`
	SKUs               int     `json:"skus"`
	Lines              int     `json:"lines"`
	PaymentFailure     float64 `json:"paymentFailure"`
	Acked              int     `json:"acked"`
	Completed          int     `json:"completed"`
	Cancelled          int     `json:"cancelled"`
	Errors             int     `json:"errors"`
	Seconds            float64 `json:"seconds"`
	PlacedPerSecond    float64 `json:"placedPerSecond"`
	CompletedPerSecond float64 `json:"completedPerSecond"`
	ReservationsPerSec float64 `json:"reservationsPerSecond"`
	AckP50             float64 `json:"ackP50Ms"`
	AckP99             float64 `json:"ackP99Ms"`
	AckMax             float64 `json:"ackMaxMs"`
	DoneP50            float64 `json:"completedP50Ms"`
	DoneP99            float64 `json:"completedP99Ms"`
	DoneMax            float64 `json:"completedMaxMs"`
	CPUSecondsPer1000  float64 `json:"cpuSecondsPer1000Orders"`
	// The collector's part of the run (the whole process, as the CPU
	// figure): its cycles, its share of the CPU, of which the marking that
	// allocating goroutines were made to do themselves (assists: what a
	// request waits for in a mark phase), and the bytes allocated per
	// placed order, which set how often it runs.
	GCCycles            int     `json:"gcCycles"`
	GCShare             float64 `json:"gcCpuShare"`
	GCAssistShare       float64 `json:"gcAssistCpuShare"`
	AllocatedKBPerOrder float64 `json:"allocatedKBPerOrder"`
	// What a collection at the end finds live, and of it what the
	// collector must scan for pointers (the embedded server's block
	// buffers hold none): a mark phase lasts in proportion to the
	// scannable part, which grows with the orders a node has seen.
	LiveHeapMB      float64 `json:"liveHeapMB"`
	ScannableHeapMB float64 `json:"scannableHeapMB"`
	// StoredPerOrder is how many JetStream messages the run stored per
	// placed order, in all and by stream: the server's work grows with it.
	StoredPerOrder         float64            `json:"storedMessagesPerOrder"`
	StoredPerOrderByStream map[string]float64 `json:"storedMessagesPerOrderByStream"`
	// The messages per placed order that the embedded server's client
	// connections sent it and received from it, by connection (the node's
	// pipeline and simulators, its command path, the load generator) and
	// in all: the wire the server works for, measured instead of counted
	// from the code. Absent with --target, whose server is not in reach.
	MessagesPerOrderByConnection map[string]MessageRate `json:"messagesPerOrderByConnection,omitempty"`
	SentPerOrder                 float64                `json:"messagesSentPerOrder,omitempty"`
	ReceivedPerOrder             float64                `json:"messagesReceivedPerOrder,omitempty"`
}

// MessageRate is a connection's messages per placed order.
type MessageRate struct {
	Sent     float64 `json:"sent"`
	Received float64 `json:"received"`
}

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Orders < 1:
		return errors.New("orders: must be at least 1")
	case o.Concurrency < 1:
		return errors.New("concurrency: must be at least 1")
	case o.SKUs < 1:
		return errors.New("skus: must be at least 1")
	case o.Lines < 1 || o.Lines > o.SKUs:
		return fmt.Errorf("lines: must be between 1 and skus (%d)", o.SKUs)
	case o.PaymentFailure < 0 || o.PaymentFailure > 1:
		return errors.New("payment-failure: must be between 0 and 1")
	case o.Rate < 0:
		return errors.New("rate: must not be negative")
	}
	if o.Tuning != nil {
		cfg := config.Default()
		cfg.Tuning = *o.Tuning
		return cfg.Validate()
	}
	return nil
}

// Version is the build's version string (set by `oms` from its -ldflags
// stamp); Revision falls back to it when the binary carries no VCS info.
var Version = "unknown"

// Revision is the VCS revision the binary was built from, if known.
func Revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

type tracker struct {
	mu       sync.Mutex
	start    map[string]time.Time
	done     map[string]time.Duration
	acks     []time.Duration
	complete atomic.Int64
	cancel   atomic.Int64
	acked    atomic.Int64
	errs     atomic.Int64
	placed   atomic.Int64
	finished chan struct{}
	target   atomic.Int64 // orders expected to finish; set once placing ends
}

func (t *tracker) finish(id, kind string, at time.Time) {
	t.mu.Lock()
	s, ok := t.start[id]
	if ok {
		if _, seen := t.done[id]; seen {
			ok = false
		} else {
			t.done[id] = at.Sub(s)
		}
	}
	t.mu.Unlock()
	if !ok {
		return
	}
	if kind == api.NotifyDelivered {
		t.complete.Add(1)
	} else {
		t.cancel.Add(1)
	}
	t.check()
}

func (t *tracker) check() {
	if n := t.target.Load(); n > 0 && t.complete.Load()+t.cancel.Load() >= n {
		select {
		case <-t.finished:
		default:
			close(t.finished)
		}
	}
}

// LoadGenerator is the name of the run's client connection, which places
// the orders and hears their notifications as a storefront would.
const LoadGenerator = "oms bench load generator"

// Run starts a node, drives the load and reports.
func Run(ctx context.Context, o Options, log *slog.Logger) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	url, connect := o.Server, o.Connect
	// traffic reads the embedded server's per-connection counts, when the
	// run has one.
	traffic := func() map[string]jetstream.Traffic { return nil }
	if url == "" {
		n, sim, cleanup, err := startLocal(ctx, o, log)
		if err != nil {
			return Result{}, err
		}
		defer cleanup()
		_ = sim
		traffic = func() map[string]jetstream.Traffic {
			t, err := n.ClientTraffic()
			if err != nil {
				log.Warn("bench: connection figures", "err", err)
			}
			return t
		}
		url = n.ClientURL()
		admin, err := n.Credentials().Connect(credentials.UserAdmin)
		if err != nil {
			return Result{}, err
		}
		connect = []nats.Option{admin}
	}
	// The load generator is a separate client, as a storefront would be
	// (as the admin: it also follows the notifications and the streams).
	nc, err := nats.Connect(url, append(connect, nats.Name(LoadGenerator))...)
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	cl := client.New(nc)
	skus := make([]string, o.SKUs)
	// Enough stock that no order is refused, whatever SKUs chance picks:
	// the run measures throughput, not stock-outs.
	perSKU := int64(o.Orders * o.Lines)
	for i := range skus {
		skus[i] = fmt.Sprintf("BENCH-%05d", i)
		if _, err := cl.SetStock(ctx, skus[i], perSKU); err != nil {
			return Result{}, fmt.Errorf("stock %s: %w", skus[i], err)
		}
	}

	tr := &tracker{start: make(map[string]time.Time, o.Orders), done: make(map[string]time.Duration, o.Orders),
		acks: make([]time.Duration, 0, o.Orders), finished: make(chan struct{})}
	sub, err := nc.Subscribe("notifications.*", func(m *nats.Msg) {
		var n api.Notification
		if json.Unmarshal(m.Data, &n) != nil {
			return
		}
		if n.Type == api.NotifyDelivered || n.Type == api.NotifyCancelled {
			tr.finish(n.OrderID, n.Type, time.Now())
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		return Result{}, err
	}

	js, err := natsjs.New(nc)
	if err != nil {
		return Result{}, err
	}
	stored0, traffic0 := storedMessages(ctx, js), traffic()

	var limiter *rate.Limiter
	if o.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.Rate), 1)
	}
	var cpu0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	gc0 := readGC()
	began := time.Now()
	stopProgress := progress(o.Progress, tr, began, o.Orders)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))
			for i := range jobs {
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				req := newOrder(r, i, skus, o.Lines)
				id := order.IDFor(req.User, req.IdempotencyKey)
				t0 := time.Now()
				tr.mu.Lock()
				tr.start[id] = t0
				tr.mu.Unlock()
				tr.placed.Add(1)
				if _, err := cl.PlaceOrder(ctx, req); err != nil {
					tr.errs.Add(1)
					tr.mu.Lock()
					delete(tr.start, id)
					tr.mu.Unlock()
					log.Warn("place failed", "err", err)
					continue
				}
				d := time.Since(t0)
				tr.mu.Lock()
				tr.acks = append(tr.acks, d)
				tr.mu.Unlock()
				tr.acked.Add(1)
			}
		}()
	}
feed:
	for i := range o.Orders {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	tr.target.Store(tr.acked.Load())
	tr.check()
	timeout := o.Timeout
	if timeout == 0 {
		// Generous: in max-rate mode placements can outrun completions,
		// and the run should measure the backlog draining, not give up.
		timeout = 2*time.Minute + time.Duration(o.Orders)*10*time.Millisecond
	}
	var runErr error
	select {
	case <-tr.finished:
	case <-time.After(timeout):
		runErr = fmt.Errorf("only %d of %d orders finished within %s", tr.complete.Load()+tr.cancel.Load(), tr.acked.Load(), timeout)
	case <-ctx.Done():
		runErr = ctx.Err()
	}
	elapsed := time.Since(began)
	stopProgress()
	var cpu1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
	gc1 := readGC()
	traffic1 := traffic()

	tr.mu.Lock()
	defer tr.mu.Unlock()
	res := Result{Revision: Revision(), Orders: o.Orders, Rate: o.Rate, Concurrency: o.Concurrency, SKUs: o.SKUs,
		Lines: o.Lines, PaymentFailure: o.PaymentFailure, Acked: int(tr.acked.Load()),
		Completed: int(tr.complete.Load()), Cancelled: int(tr.cancel.Load()), Errors: int(tr.errs.Load()),
		Seconds: elapsed.Seconds()}
	res.PlacedPerSecond = float64(res.Acked) / elapsed.Seconds()
	res.CompletedPerSecond = float64(res.Completed) / elapsed.Seconds()
	res.ReservationsPerSec = float64(res.Acked*o.Lines) / elapsed.Seconds()
	res.AckP50, res.AckP99, res.AckMax = latency.Summary(tr.acks)
	done := make([]time.Duration, 0, len(tr.done))
	for _, d := range tr.done {
		done = append(done, d)
	}
	res.DoneP50, res.DoneP99, res.DoneMax = latency.Summary(done)
	cpu := tv(cpu1.Utime) + tv(cpu1.Stime) - tv(cpu0.Utime) - tv(cpu0.Stime)
	res.CPUSecondsPer1000 = cpu / float64(max(res.Acked, 1)) * 1000
	res.GCCycles = int(gc1.cycles - gc0.cycles)
	if cpu > 0 {
		res.GCShare, res.GCAssistShare = (gc1.cpu-gc0.cpu)/cpu, (gc1.assist-gc0.assist)/cpu
	}
	res.AllocatedKBPerOrder = float64(gc1.allocated-gc0.allocated) / 1024 / float64(max(res.Acked, 1))
	// A collection now, after the figures above, finds exactly what the
	// node keeps after these orders (the last cycle of the run counted the
	// scannable bytes allocated since, live or not).
	live, scannable := heap.Kept()
	res.LiveHeapMB, res.ScannableHeapMB = heap.MB(live), heap.MB(scannable)
	if traffic0 != nil && traffic1 != nil {
		res.MessagesPerOrderByConnection = map[string]MessageRate{}
		per := func(n int64) float64 { return float64(n) / float64(max(res.Acked, 1)) }
		for name, t := range traffic1 {
			r := MessageRate{Sent: per(t.Sent - traffic0[name].Sent), Received: per(t.Received - traffic0[name].Received)}
			res.MessagesPerOrderByConnection[name] = r
			res.SentPerOrder += r.Sent
			res.ReceivedPerOrder += r.Received
		}
	}
	res.StoredPerOrderByStream = map[string]float64{}
	for name, n := range storedMessages(ctx, js) {
		per := float64(n-stored0[name]) / float64(max(res.Acked, 1))
		res.StoredPerOrderByStream[name] = per
		res.StoredPerOrder += per
	}
	return res, runErr
}

// storedMessages counts the messages each stream of the lifecycle holds.
func storedMessages(ctx context.Context, js natsjs.JetStream) map[string]uint64 {
	out := map[string]uint64{}
	for _, name := range []string{jetstream.StreamOrders, jetstream.StreamSKUs, jetstream.StreamInbound,
		jetstream.StreamOutbox} {
		if s, err := js.Stream(ctx, name); err == nil {
			out[name] = s.CachedInfo().State.Msgs
		}
	}
	return out
}

// startLocal runs a node and the simulated providers at full speed.
func startLocal(ctx context.Context, o Options, log *slog.Logger) (*node.Node, *simulator.Simulator, func(), error) {
	dir := o.DataDir
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "oms-bench-")
		if err != nil {
			return nil, nil, cleanup, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(d) })
		dir = d
	}
	n, err := node.Start(ctx, nodeConfig(o, dir), log)
	if err != nil {
		cleanup()
		return nil, nil, func() {}, err
	}
	cleanups = append(cleanups, n.Stop)
	sim, err := simulator.Start(ctx, n.Conn(), config.Simulator{PaymentSuccessRate: 1 - o.PaymentFailure,
		DeliveryAttemptFailure: 0, SKUs: 1}, log)
	if err != nil {
		cleanup()
		return nil, nil, func() {}, err
	}
	cleanups = append(cleanups, sim.Stop)
	return n, sim, cleanup, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// gcState is what the runtime has counted of its collector so far.
type gcState struct {
	cycles, allocated uint64
	cpu, assist       float64
}

// readGC reads the collector's counters from runtime/metrics (all
// present since Go 1.21).
func readGC() gcState {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/gc/mark/assist:cpu-seconds"}}
	metrics.Read(s)
	return gcState{cycles: s[0].Value.Uint64(), allocated: s[1].Value.Uint64(),
		cpu: s[2].Value.Float64(), assist: s[3].Value.Float64()}
}

func newOrder(r *rand.Rand, i int, skus []string, lines int) api.PlaceOrder {
	req := api.PlaceOrder{IdempotencyKey: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i),
		User: fmt.Sprintf("user-%d", r.IntN(100_000)), NewOrder: api.NewOrder{Currency: "EUR", Source: "web",
			PaymentMethod: "card", Destination: order.Destination{Country: "DE", PostalCode: "10115",
				Address: "Invalidenstr. 117", PhoneNumber: "+49 30 1234567"}}}
	first := r.IntN(len(skus))
	for l := range lines {
		req.Items = append(req.Items, order.Item{SKU: skus[(first+l)%len(skus)], Quantity: 1, UnitPrice: 1999})
	}
	return req
}

// progress prints a live line until the returned func is called.
func progress(w io.Writer, tr *tracker, began time.Time, total int) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintln(w)
				return
			case <-t.C:
				s := time.Since(began).Seconds()
				done := tr.complete.Load() + tr.cancel.Load()
				fmt.Fprintf(w, "\r  %5.1fs  placed %d/%d  acked %d  finished %d  (%.0f finished/s)   ",
					s, tr.placed.Load(), total, tr.acked.Load(), done, float64(done)/s)
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// nodeConfig is the node under test: oms serve's defaults, no listeners but
// NATS on a random loopback port, the run's partitions and tuning.
func nodeConfig(o Options, dir string) config.Config {
	cfg := config.Default()
	cfg.NodeName, cfg.DataDir, cfg.NatsListen, cfg.Simulate, cfg.StatusInterval = "bench", dir, "127.0.0.1:0", false, 0
	cfg.HTTP.Listen, cfg.HTTP.InternalListen = "", ""
	if o.Partitions > 0 {
		cfg.Partitions = o.Partitions
	}
	if o.Tuning != nil {
		cfg.Tuning = *o.Tuning
	}
	return cfg
}
