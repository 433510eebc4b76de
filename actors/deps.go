package actors

import (
	"log/slog"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
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
	// FencedAttempts bounds how often an actor catches up and decides again
	// when another writer moved its subject; Fenced paces those attempts:
	// two nodes acting for one key at once (around a node loss) would
	// otherwise keep overtaking each other.
	FencedAttempts int
	Fenced         jetstream.Backoff
}
