package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/jetstream"
)

// TestRunDrivesEveryOrderToItsEnd runs oms bench small: every placed order
// finishes (completed, or cancelled when its payment fails), and the
// messages stored per order are the lifecycle's, exactly: a regression that
// stores more per order shows here, not only as a slower benchmark.
func TestRunDrivesEveryOrderToItsEnd(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name                 string
		failure              float64
		completed, cancelled int
		orderEvents, outbox  float64
	}{
		// placed, stock held, paid, shipped, completed; the payment
		// request and the delivery request (notifications are sent, not
		// stored).
		{"all paid", 0, 30, 0, 5, 2},
		// placed, stock held, cancelled; the payment request.
		{"all payments fail", 1, 0, 30, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(ctx, Options{Orders: 30, Concurrency: 8, SKUs: 5, Lines: 1, PaymentFailure: tc.failure,
				Partitions: 8, DataDir: t.TempDir(), Timeout: time.Minute}, log)
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 || res.Acked != 30 || res.Completed != tc.completed || res.Cancelled != tc.cancelled {
				t.Fatalf("acked %d, completed %d, cancelled %d, errors %d; want 30, %d, %d, 0",
					res.Acked, res.Completed, res.Cancelled, res.Errors, tc.completed, tc.cancelled)
			}
			by := res.StoredPerOrderByStream
			want := map[string]float64{jetstream.StreamOrders: tc.orderEvents, jetstream.StreamOutbox: tc.outbox,
				jetstream.StreamInbound: 1 + 2*(1-tc.failure)}
			for stream, n := range want {
				if by[stream] != n {
					t.Errorf("%s: %.2f messages per order, want %.0f (all: %v)", stream, by[stream], n, by)
				}
			}
			// Reserve, then commit or release: group commit may store
			// several orders' SKU events in one message.
			if s := by[jetstream.StreamSKUs]; s <= 0 || s > 2 {
				t.Errorf("%s: %.2f messages per order, want (0, 2]", jetstream.StreamSKUs, s)
			}
			// The wire, per order: every stored message is sent by one of
			// the node's connections (the simulators use its pipeline's)
			// and acknowledged to it; each placement is a request of the
			// load generator, answered, and its notifications follow.
			conns := res.MessagesPerOrderByConnection
			lg, pipeline, commands := conns[LoadGenerator], conns["oms bench"], conns["oms bench commands"]
			if len(conns) != 3 {
				t.Errorf("connections %v, want the load generator's and the node's two", conns)
			}
			if lg.Sent < 1 || lg.Received < 2 {
				t.Errorf("load generator sent %.2f and received %.2f messages per order, want at least 1 and 2", lg.Sent, lg.Received)
			}
			if node := pipeline.Sent + commands.Sent; node < res.StoredPerOrder || pipeline.Received+commands.Received < res.StoredPerOrder {
				t.Errorf("the node sent %.2f and received %.2f messages per order, fewer than the %.2f it stored",
					node, pipeline.Received+commands.Received, res.StoredPerOrder)
			}
			if d := res.SentPerOrder - (lg.Sent + pipeline.Sent + commands.Sent); d < -1e-9 || d > 1e-9 {
				t.Errorf("sent %.2f per order in all, not the sum of %v", res.SentPerOrder, conns)
			}
			if d := res.ReceivedPerOrder - (lg.Received + pipeline.Received + commands.Received); d < -1e-9 || d > 1e-9 {
				t.Errorf("received %.2f per order in all, not the sum of %v", res.ReceivedPerOrder, conns)
			}
			t.Logf("messages per order: %+v", conns)
			if res.CPUSecondsPer1000 <= 0 || res.AckP99 <= 0 || res.DoneP50 <= 0 {
				t.Errorf("figures missing: %+v", res)
			}
			// No order is placed without allocating; the collector's
			// shares are parts of the CPU, the assists part of its own;
			// a node's heap is never empty.
			if res.AllocatedKBPerOrder < 1 || res.GCShare < 0 || res.GCShare > 1 || res.GCAssistShare < 0 ||
				res.GCAssistShare > res.GCShare || res.GCCycles < 0 ||
				res.LiveHeapMB <= 0 || res.ScannableHeapMB <= 0 {
				t.Errorf("collector figures: %d cycles, share %.3f, assists %.3f, %.1f KB per order, live %.1f MB, scannable %.1f MB",
					res.GCCycles, res.GCShare, res.GCAssistShare, res.AllocatedKBPerOrder, res.LiveHeapMB, res.ScannableHeapMB)
			}
		})
	}
}

// TestNodeConfigTakesTheRunsTuning: what the run asks for reaches the node
// under test, and what it leaves unset stays as oms serve has it.
func TestNodeConfigTakesTheRunsTuning(t *testing.T) {
	def := config.Default()
	cfg := nodeConfig(Options{}, "d")
	if cfg.Partitions != def.Partitions || cfg.Tuning != def.Tuning {
		t.Fatalf("unset options: %d partitions, tuning %+v; want %d, %+v", cfg.Partitions, cfg.Tuning,
			def.Partitions, def.Tuning)
	}
	tuning := config.DefaultTuning()
	tuning.ReadModelCommitInterval, tuning.EffectsMaxHeld, tuning.DuplicateWindow = 150*time.Millisecond, 10, 15*time.Second
	cfg = nodeConfig(Options{Partitions: 4, Tuning: &tuning}, "d")
	if cfg.Partitions != 4 || cfg.Tuning != tuning || cfg.DataDir != "d" {
		t.Fatalf("set options: %d partitions, tuning %+v, dir %q; want 4, %+v, d", cfg.Partitions, cfg.Tuning,
			cfg.DataDir, tuning)
	}
}
