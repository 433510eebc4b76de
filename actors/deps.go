package actors

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// Deps is what the order and SKU actors need from the node.
type Deps struct {
	JS        natsjs.JetStream
	Orders    natsjs.Stream
	SKUs      natsjs.Stream
	DB        *store.DB
	Snapshots *store.Snapshotter
	Policy    order.Policy
	Log       *slog.Logger
	// SnapshotEvery bounds replay on activation for long-lived actors (a
	// hot SKU): a snapshot is queued after this many events.
	SnapshotEvery int
}

// maxAppendAttempts bounds how often an actor catches up and re-decides when
// another writer moved the stream under it.
const maxAppendAttempts = 8

// fencedBackoff waits before the next attempt after a fenced append: two
// nodes acting for one key at once (around a node loss) would otherwise
// keep overtaking each other. Exponential, with full jitter, capped.
func fencedBackoff(ctx context.Context, attempt int) {
	limit := min(time.Millisecond<<attempt, 100*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit)) + 1))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
