package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestRestartReadsTheStoredOrders runs oms bench restart small: the node
// restarts on the orders written before it, answers a command on one of
// them, projects them all into its read model, and reports what it keeps
// in memory for them.
func TestRestartReadsTheStoredOrders(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunRestart(ctx, 2000, t.TempDir(), log, nil)
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
}
