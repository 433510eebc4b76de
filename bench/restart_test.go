package bench

import (
	"context"
	"io"
	"log/slog"
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
// model's catch-up a measure of random writes no real history has.
func TestRestartReadsTheStoredOrders(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	res, err := RunRestart(ctx, 2000, dir, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StoredOrders != 2000 || res.ReadySeconds <= 0 || res.FirstCommandS < res.ReadySeconds || res.CaughtUpS < res.FirstCommandS {
		t.Fatalf("stored %d, ready at %.3fs, first command at %.3fs, read model caught up at %.3fs: want 2000 stored, in that order",
			res.StoredOrders, res.ReadySeconds, res.FirstCommandS, res.CaughtUpS)
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
}
