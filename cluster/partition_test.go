package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/jetstream"
)

// TestFloorsCarryAcrossConsumerLayouts: the same data pulled by the
// partitions' own consumers (a cluster), then by the one consumer of every
// partition (a standalone node), then by the partitions' consumers again.
// Each switch retires the consumers it replaces, recording their floors,
// and the new consumers start after what was handled: none past a message
// that was not acknowledged, none from the stream's start.
func TestFloorsCarryAcrossConsumerLayouts(t *testing.T) {
	const partitions = 4
	env := natstest.Start(t, natstest.Options{Partitions: partitions})
	ctx := env.Ctx
	floors, err := jetstream.OpenFloors(ctx, env.JS, jetstream.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	limits := jetstream.ConsumerLimits{AckWait: 5 * time.Second, MaxAckPending: 64}
	// Two provider events per partition.
	var seqs [partitions][]uint64
	for i := 0; len(seqs[0]) < 2 || len(seqs[1]) < 2 || len(seqs[2]) < 2 || len(seqs[3]) < 2; i++ {
		id := fmt.Sprintf("order-%d", i)
		p := jetstream.PartitionOf(id, partitions)
		if len(seqs[p]) == 2 {
			continue
		}
		ack, err := env.JS.Publish(ctx, jetstream.PaymentEventsPrefix+id, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		seqs[p] = append(seqs[p], ack.Sequence)
	}

	// The cluster layout: each partition's consumer handles its first event.
	for p := range partitions {
		cons, err := inboundConsumer(ctx, env.JS, floors, p, limits)
		if err != nil {
			t.Fatal(err)
		}
		if got := take(t, ctx, cons, 1); got[0] != seqs[p][0] {
			t.Fatalf("partition %d delivered %d first, want %d", p, got[0], seqs[p][0])
		}
	}
	// A standalone start retires them and begins after the lowest floor:
	// every partition's second event is delivered, and those after the
	// lowest floor that were handled already (idempotent) again.
	all, err := inboundAllConsumer(ctx, env.JS, floors, partitions, limits)
	if err != nil {
		t.Fatal(err)
	}
	lowest := min(seqs[0][0], seqs[1][0], seqs[2][0], seqs[3][0])
	if start := all.CachedInfo().Config.OptStartSeq; start != lowest+1 {
		t.Fatalf("the consumer of every partition starts at %d, want %d", start, lowest+1)
	}
	for p := range partitions {
		if _, err := env.JS.Consumer(ctx, jetstream.StreamInbound, jetstream.InboundConsumerName(p)); !errors.Is(err, natsjs.ErrConsumerNotFound) {
			t.Fatalf("partition %d's consumer not retired: %v", p, err)
		}
		if f, err := floors.Get(ctx, floorKey(p)); err != nil || f != seqs[p][0] {
			t.Fatalf("partition %d's floor %d (%v), want %d", p, f, err, seqs[p][0])
		}
	}
	// It handles everything but the last event stored.
	last, lastP := uint64(0), 0
	for p := range partitions {
		if seqs[p][1] > last {
			last, lastP = seqs[p][1], p
		}
	}
	for _, seq := range take(t, ctx, all, int(last-lowest-1)) {
		if seq <= lowest || seq >= last {
			t.Fatalf("delivered %d, want only (%d, %d)", seq, lowest, last)
		}
	}
	info, err := all.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	allFloor := info.AckFloor.Stream
	if allFloor != last-1 {
		t.Fatalf("ack floor %d, want %d", allFloor, last-1)
	}

	// Back to the cluster layout: the consumer of every partition is
	// retired with its floor, and each partition starts after the higher
	// of its own floor and that one: the last event's partition gets it,
	// and every partition starts past what it had.
	if had, err := jetstream.Retire(ctx, env.JS, floors, jetstream.StreamInbound, jetstream.InboundAllConsumerName, allFloorKey); err != nil || !had {
		t.Fatalf("retire the consumer of every partition: %v %v", had, err)
	}
	for p := range partitions {
		cons, err := inboundConsumer(ctx, env.JS, floors, p, limits)
		if err != nil {
			t.Fatal(err)
		}
		if start := cons.CachedInfo().Config.OptStartSeq; start != allFloor+1 {
			t.Fatalf("partition %d starts at %d, want %d", p, start, allFloor+1)
		}
		if p == lastP {
			if got := take(t, ctx, cons, 1); got[0] != last {
				t.Fatalf("partition %d delivered %d, want %d", p, got[0], last)
			}
		}
	}
}

// take fetches and acknowledges n messages, returning their stream
// sequences.
func take(t *testing.T, ctx context.Context, cons natsjs.Consumer, n int) []uint64 {
	t.Helper()
	batch, err := cons.Fetch(n, natsjs.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, md.Sequence.Stream)
	}
	if len(seqs) != n {
		t.Fatalf("fetched %d messages, want %d (%v)", len(seqs), n, batch.Error())
	}
	return seqs
}
