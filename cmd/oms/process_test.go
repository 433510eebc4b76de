package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/simulator"
)

var omsBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oms-bin-")
	if err != nil {
		panic(err)
	}
	omsBinary = filepath.Join(dir, "oms")
	build := exec.Command("go", "build", "-race", "-o", omsBinary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building oms for process tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is one `oms serve` child: its NATS URL, its HTTP listeners and
// the directory of its credentials.
type process struct {
	cmd      *exec.Cmd
	url      string
	http     string
	internal string
	creds    string
	dataDir  string
	out      *strings.Builder
	mu       sync.Mutex
}

// nkey is the seed file of one of the process's NATS users.
func (p *process) nkey(u credentials.User) string { return filepath.Join(p.creds, string(u)+".nk") }

func startProcess(t *testing.T, dataDir string, extra ...string) *process {
	t.Helper()
	p, err := launch(t, dataDir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch is startProcess for any goroutine: it returns the error instead
// of ending the test.
func launch(t *testing.T, dataDir string, extra ...string) (*process, error) {
	args := append([]string{"serve", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--simulate=false",
		"--status-interval", "0", "--partitions", "16", "--http-listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(omsBinary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, out: &strings.Builder{}, creds: filepath.Join(dataDir, "credentials"), dataDir: dataDir}
	for i, a := range extra {
		if a == "--credentials-dir" && i+1 < len(extra) {
			p.creds = extra[i+1]
		}
	}
	// The log goes to the same buffer, for the failure messages.
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.out.Write(b)
	})
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urls := make(chan string, 1)
	exited := make(chan struct{}) // stdout closed: the process is gone
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			if f := strings.Fields(line); len(f) >= 2 {
				switch f[0] {
				case "HTTP:":
					p.http = f[1]
				case "internal:":
					p.internal = f[1]
				}
			}
			p.mu.Unlock()
			// The data dir line follows the listeners: the process is ready.
			if f := strings.Fields(line); len(f) == 3 && f[0] == "data" && f[1] == "dir:" {
				p.mu.Lock()
				url := p.url
				p.mu.Unlock()
				urls <- url
			}
			if f := strings.Fields(line); len(f) == 2 && f[0] == "NATS:" {
				p.mu.Lock()
				p.url = f[1]
				p.mu.Unlock()
			}
		}
	}()
	fail := func(why string) (*process, error) {
		_ = cmd.Process.Kill()
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, fmt.Errorf("oms serve %s; its output:\n%s", why, p.out.String())
	}
	select {
	case <-urls:
	case <-exited:
		select {
		case <-urls:
		default:
			return fail("exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		return fail("did not report its addresses in 60s")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p, nil
}

// output is what the process wrote so far.
func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// kill ends the process with SIGKILL: no graceful step of any kind.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// eventually polls cond until it holds or the limit passes.
var eventually = poll.Until

// foldFromStream rebuilds an order from its events, independently of the
// node that wrote them.
func foldFromStream(ctx context.Context, t *testing.T, s natsjs.Stream, id string) (order.Order, []order.Event) {
	t.Helper()
	var st order.State
	var events []order.Event
	err := actors.OrderHistory(ctx, s, id, 0, func(seq uint64, e order.Event) error {
		st = order.Evolve(st, e)
		st.Order.Version = seq
		events = append(events, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st.Order, events
}

// connect connects to p as the node's own user, which may read and write
// every stream (a test injects and inspects events).
func connect(t *testing.T, p *process) (*nats.Conn, *client.Client, natsjs.JetStream) {
	t.Helper()
	nkey, err := nats.NkeyOptionFromSeed(p.nkey(credentials.UserNode))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(p.url, nats.MaxReconnects(0), nkey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := natsjs.New(nc)
	return nc, client.New(nc), js
}

// TestHardStopAndRestart kills `oms serve` with SIGKILL while orders are in
// every stage, restarts it on the same data dir, and checks that every
// acknowledged order is there with exactly the state its events say, that
// no cause was applied twice, that stock adds up, and that every in-flight
// order then runs to completion.
func TestHardStopAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	simCfg := config.Simulator{PaymentSuccessRate: 1, DeliveryAttemptFailure: 0,
		MinDelay: 50 * time.Millisecond, MaxDelay: 400 * time.Millisecond, SKUs: 1}

	a := startProcess(t, dir)
	nc, cl, _ := connect(t, a)
	skus := []string{"CRASH-A", "CRASH-B", "CRASH-C"}
	for _, s := range skus {
		if _, err := cl.SetStock(ctx, s, 10_000); err != nil {
			t.Fatal(err)
		}
	}
	sim, err := simulator.Start(ctx, nc, simCfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// Place orders steadily; kill while placements, payments and
	// deliveries are all in flight.
	const total = 200
	var acked []string
	for i := range total {
		req := api.PlaceOrder{IdempotencyKey: fmt.Sprintf("crash-%d", i), User: "u", NewOrder: api.NewOrder{Currency: "EUR",
			Items: []order.Item{{SKU: skus[i%3], Quantity: 1 + int64(i%2), UnitPrice: 250},
				{SKU: skus[(i+1)%3], Quantity: 1, UnitPrice: 100}},
			Destination: order.Destination{Country: "NL", PostalCode: "1011", Address: "Dam 1", PhoneNumber: "+31 20 1234567"}}}
		o, err := cl.PlaceOrder(ctx, req)
		if err != nil {
			t.Fatalf("place %d: %v", i, err)
		}
		acked = append(acked, o.ID)
	}
	a.kill(t)
	sim.Stop()
	nc.Close()
	// The bbolt file was written without fsyncs; its boot marker, left by
	// the kill, names this boot, so the restarted node keeps the file.
	assertBootMarker(t, dir, "after kill -9", true)

	b := startProcess(t, dir)
	nc2, cl2, js2 := connect(t, b)
	if out := b.output(); strings.Contains(out, "node-local store dropped") {
		t.Fatalf("the restarted node dropped its store after kill -9 on the same boot:\n%s", out)
	}
	orders, err := js2.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	// Every acknowledged order is there, identical to its events.
	for _, id := range acked {
		want, _ := foldFromStream(ctx, t, orders, id)
		got, err := cl2.GetOrderAt(ctx, id, want.Version)
		if err != nil {
			t.Fatalf("order %s after restart: %v", id, err)
		}
		if got.Version < want.Version {
			t.Fatalf("order %s: version %d behind stream %d", id, got.Version, want.Version)
		}
		if got.Version == want.Version && !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("order %s differs from its stream:\n got %+v\nwant %+v", id, got, want)
		}
	}
	// In-flight orders finish on the restarted node.
	sim2, err := simulator.Start(ctx, nc2, simCfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sim2.Stop()
	eventually(t, 2*time.Minute, "every order completed", func() (bool, string) {
		done := 0
		var last order.Order
		for _, id := range acked {
			o, err := cl2.GetOrder(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			if o.Status == order.StatusCompleted {
				done++
			} else {
				last = o
			}
		}
		return done == len(acked), fmt.Sprintf("%d/%d completed; e.g. %s %s %s", done, len(acked), last.ID, last.Status, last.Reservation)
	})
	// No cause applied twice, and stock adds up to the completed orders.
	sold := map[string]int64{}
	for _, id := range acked {
		_, events := foldFromStream(ctx, t, orders, id)
		assertCausesOnce(t, id, events)
		o, _ := cl2.GetOrder(ctx, id)
		for _, it := range o.Items {
			sold[it.SKU] += it.Quantity
		}
	}
	for _, s := range skus {
		eventually(t, 30*time.Second, "stock of "+s, func() (bool, string) {
			v, err := cl2.GetStock(ctx, s)
			if err != nil {
				return false, err.Error()
			}
			return v.OnHand == 10_000-sold[s] && v.Reserved == 0,
				fmt.Sprintf("%+v, sold %d", v, sold[s])
		})
	}
	checkSKUHistory(ctx, t, js2, skus)
}

// assertBootMarker checks whether the default node's bbolt file has its
// boot marker: while it may hold unsynced writes, on Linux only (elsewhere
// the file is fsynced and has none).
func assertBootMarker(t *testing.T, dataDir, when string, unsynced bool) {
	t.Helper()
	want := unsynced && runtime.GOOS == "linux"
	if _, err := os.Stat(filepath.Join(dataDir, "oms-1.bolt.boot")); (err == nil) != want {
		t.Fatalf("boot marker %s: %v, want it there: %v", when, err, want)
	}
}

// assertCausesOnce fails if any command or provider event was applied to
// the order more than once.
func assertCausesOnce(t *testing.T, id string, events []order.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.CauseID] {
			t.Fatalf("order %s: cause %s applied twice", id, e.CauseID)
		}
		seen[e.CauseID] = true
	}
}

// normalize drops what JSON cannot round-trip identically (monotonic clock).
func normalize(o order.Order) order.Order {
	b, _ := json.Marshal(o)
	var out order.Order
	_ = json.Unmarshal(b, &out)
	return out
}

// checkSKUHistory asserts availability never went negative in any event.
func checkSKUHistory(ctx context.Context, t *testing.T, js natsjs.JetStream, skus []string) {
	t.Helper()
	for _, sku := range skus {
		events, err := skuHistory(ctx, js, sku)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.OnHand-e.Reserved < 0 {
				t.Fatalf("%s: onHand %d reserved %d after %s", sku, e.OnHand, e.Reserved, e.ID)
			}
		}
	}
}

// skuHistory returns every event of a SKU, unpacking batched messages.
func skuHistory(ctx context.Context, js natsjs.JetStream, sku string) ([]inventory.Event, error) {
	s, err := js.Stream(ctx, jetstream.StreamSKUs)
	if err != nil {
		return nil, err
	}
	var out []inventory.Event
	err = actors.SKUHistory(ctx, s, sku, 0, func(_ uint64, e inventory.Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}
