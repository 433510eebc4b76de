package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/store"
)

// skuDeps starts an embedded JetStream and a bbolt file for SKU actors.
func skuDeps(t testing.TB) (*Deps, context.Context) {
	t.Helper()
	env := natstest.Start(t, natstest.Options{})
	skus, err := env.JS.Stream(env.Ctx, jetstream.StreamSKUs)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "t.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	snaps := store.NewSnapshotter(db, 1024, 10*time.Millisecond, log)
	t.Cleanup(snaps.Close)
	return &Deps{JS: env.JS, SKUs: skus, DB: db, Snapshots: snaps, Log: log, SnapshotEvery: 64, FencedAttempts: 8,
		Fenced:     jetstream.Backoff{Base: time.Millisecond, Max: 100 * time.Millisecond},
		Leaderless: jetstream.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}, env.Ctx
}

func skuRequest(t *testing.T, ctx context.Context, h *Host, sku string, cmd any) SKUResult {
	t.Helper()
	r, err := h.Request(ctx, sku, SKUCommand{Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	return r.(SKUResult)
}

// TestHotSKUGroupCommit: concurrent reservations on one SKU are committed
// in batches (fewer messages than events), never beyond the stock, each
// answered with its own outcome; a fresh actor with no snapshot rebuilds
// the same state from the batched messages; and a batch fenced by another
// writer is decided again on the state that writer left.
func TestHotSKUGroupCommit(t *testing.T) {
	d, ctx := skuDeps(t)
	sys := NewSystem(d.Log)
	defer sys.Shutdown()
	h := NewHost(sys, NewSKUHandler(d), HostOptions{Idle: time.Minute, Mailbox: 4096, MaxBatch: 256})
	defer h.Stop()
	const sku, stock, orders = "HOT", 150, 400
	skuRequest(t, ctx, h, sku, inventory.SetStock{ID: "count-1", SKU: sku, Quantity: stock, At: time.Now()})

	var wg sync.WaitGroup
	outcomes := make(chan inventory.HoldState, orders)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.Request(ctx, sku, SKUCommand{Cmd: inventory.Reserve{SKU: sku, OrderID: fmt.Sprint("o-", i),
				Quantity: 1, ExpiresAt: time.Now().Add(time.Hour), At: time.Now()}})
			if err != nil || r.(SKUResult).Err != nil {
				t.Errorf("reserve %d: %v %+v", i, err, r)
				return
			}
			outcomes <- r.(SKUResult).Hold.State
		}()
	}
	wg.Wait()
	close(outcomes)
	count := map[inventory.HoldState]int{}
	for s := range outcomes {
		count[s]++
	}
	if count[inventory.HoldReserved] != stock || count[inventory.HoldRejected] != orders-stock {
		t.Fatalf("outcomes %v: want %d reserved, %d rejected", count, stock, orders-stock)
	}
	events, messages := 0, map[uint64]bool{}
	err := SKUHistory(ctx, d.SKUs, sku, 0, func(seq uint64, e inventory.Event) error {
		if e.Reserved > e.OnHand {
			t.Fatalf("seq %d: reserved %d of %d on hand", seq, e.Reserved, e.OnHand)
		}
		events++
		messages[seq] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if events != orders+1 || len(messages) >= events {
		t.Fatalf("%d events in %d messages: want %d events, batched into fewer messages", events, len(messages), orders+1)
	}
	t.Logf("%d events in %d messages", events, len(messages))

	// Another node appends to the SKU behind this actor's back (a forced
	// double owner): the next batch is fenced, reloaded and decided again.
	last, err := jetstream.LastSeq(ctx, d.SKUs, jetstream.SKUEventsPrefix+sku)
	if err != nil {
		t.Fatal(err)
	}
	live, _ := h.Request(ctx, sku, GetStock{})
	restock, _ := inventory.EncodeEvents([]inventory.Event{{ID: "other-node", Type: inventory.EventStockSet, V: 1, SKU: sku,
		Quantity: stock + 10, OnHand: stock + 10, Reserved: live.(SKUResult).Stock.Reserved, At: time.Now()}})
	if _, err := jetstream.Append(ctx, d.JS, jetstream.SKUEventsPrefix+sku, restock, last, nil); err != nil {
		t.Fatal(err)
	}
	r := skuRequest(t, ctx, h, sku, inventory.Reserve{SKU: sku, OrderID: "after-restock", Quantity: 10,
		ExpiresAt: time.Now().Add(time.Hour), At: time.Now()})
	if r.Hold.State != inventory.HoldReserved || r.Stock.OnHand != stock+10 || r.Stock.Available != 0 {
		t.Fatalf("after the other writer: %+v", r)
	}

	// A second host with an empty bbolt file: state comes from the stream
	// alone, batches included.
	d2 := *d
	d2.DB, err = store.Open(filepath.Join(t.TempDir(), "fresh.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.DB.Close()
	d2.Snapshots = store.NewSnapshotter(d2.DB, 16, time.Second, d.Log)
	defer d2.Snapshots.Close()
	h2 := NewHost(sys, NewSKUHandler(&d2), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 256})
	defer h2.Stop()
	fresh, err := h2.Request(ctx, sku, GetStock{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fresh.(SKUResult).Stock, r.Stock; got != want {
		t.Fatalf("rebuilt from the stream: %+v, live: %+v", got, want)
	}
}

// BenchmarkHotSKUReservations is one SKU taking reservations from many
// callers at once, with real fenced appends to a file-backed stream: the
// group commit's throughput, without the rest of the order pipeline.
func BenchmarkHotSKUReservations(b *testing.B) {
	d, ctx := skuDeps(b)
	sys := NewSystem(d.Log)
	defer sys.Shutdown()
	h := NewHost(sys, NewSKUHandler(d), HostOptions{Idle: time.Minute, Mailbox: 1 << 16, MaxBatch: 256})
	defer h.Stop()
	if _, err := h.Request(ctx, "HOT", SKUCommand{Cmd: inventory.SetStock{ID: "count", SKU: "HOT", Quantity: 1 << 40, At: time.Now()}}); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.SetParallelism(256)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("o-", seq.Add(1))
			r, err := h.Request(ctx, "HOT", SKUCommand{Cmd: inventory.Reserve{SKU: "HOT", OrderID: id, Quantity: 1,
				ExpiresAt: time.Now().Add(time.Hour), At: time.Now()}})
			if err != nil || r.(SKUResult).Err != nil {
				b.Fatal(err, r)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reservations/s")
}
