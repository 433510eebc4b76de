package bench

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// TestRestartReadsTheStoredOrders runs oms bench restart small: the node
// restarts on the orders written before it, answers a command on one of
// them, projects them all into its read model, and reports what it keeps
// in memory for them. The stored orders are a sale's history, placed one
// after the other: orders all placed at one instant would make the read
// model's catch-up a measure of random writes no real history has. With
// their lifecycle, every order but the probe is delivered.
func TestRestartReadsTheStoredOrders(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		name      string
		lifecycle bool
		events    int
		statuses  map[string]int64
	}{
		{"placements", false, n, map[string]int64{string(order.StatusReceived): n}},
		// The probe stops once paid, three events in.
		{"lifecycle", true, 5*(n-1) + 3, map[string]int64{string(order.StatusCompleted): n - 1, string(order.StatusPaid): 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			res, err := RunRestart(ctx, RestartOptions{Orders: n, Lifecycle: tc.lifecycle, DataDir: dir}, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StoredOrders != n || res.StoredEvents != tc.events || res.ReadySeconds <= 0 ||
				res.FirstCommandS < res.ReadySeconds || res.CaughtUpS < res.FirstCommandS {
				t.Fatalf("stored %d orders in %d events, ready at %.3fs, first command at %.3fs, read model caught up at %.3fs: "+
					"want %d orders in %d events, in that order", res.StoredOrders, res.StoredEvents, res.ReadySeconds,
					res.FirstCommandS, res.CaughtUpS, n, tc.events)
			}
			if res.LiveHeapMB <= 0 || res.ScannableHeapMB <= 0 || res.ScannableHeapMB > res.LiveHeapMB {
				t.Fatalf("live heap %.1f MB, scannable %.1f MB: want both above zero, the scannable part within the live",
					res.LiveHeapMB, res.ScannableHeapMB)
			}
			db, err := store.Open(filepath.Join(dir, "bench.bolt"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			counts, err := db.StatusCounts()
			if err != nil {
				t.Fatal(err)
			}
			for status, c := range counts {
				if c == 0 {
					delete(counts, status)
				}
			}
			if !maps.Equal(counts, tc.statuses) {
				t.Fatalf("the read model counts %v: want %v", counts, tc.statuses)
			}
			page, _, err := db.ListOrders(order.Filter{Limit: order.MaxPageSize})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != order.MaxPageSize {
				t.Fatalf("the read model lists %d orders: want a full page of %d", len(page), order.MaxPageSize)
			}
			for i := 1; i < len(page); i++ {
				if gap := page[i-1].CreatedAt.Sub(page[i].CreatedAt).Abs(); gap != time.Millisecond {
					t.Fatalf("orders %s and %s were placed %s apart: want one after the other, a millisecond apart",
						page[i-1].ID, page[i].ID, gap)
				}
			}
		})
	}
}
