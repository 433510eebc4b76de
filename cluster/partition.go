package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
)

// floorsBucket keeps, per inbound partition, the stream sequence up to which
// every provider event has been acknowledged.
const floorsBucket = "OMS_INBOUND_FLOORS"

// partitions pulls the inbound partitions this node owns. Each partition
// has its own durable consumer, processed in order by one node; a message
// that cannot be processed is dead-lettered by the pipeline and never
// blocks its partition.
type partitions struct {
	c *Cluster

	mu        sync.Mutex
	started   bool
	stopped   bool
	consumers []natsjs.Consumer
	pipe      *jetstream.Pipeline
	stops     map[int]func()
	// stopping counts partitions whose handlers are still finishing after
	// this node stopped pulling them.
	stopping sync.WaitGroup

	cancelFloors context.CancelFunc
	floorsDone   chan struct{}
}

func (ps *partitions) start(ctx context.Context, pipe *jetstream.Pipeline) (func(), error) {
	c := ps.c
	floors, err := c.openBucket(ctx, natsjs.KeyValueConfig{Bucket: floorsBucket,
		Description: "oms inbound partitions' acknowledgement floors", Replicas: c.o.Replicas, Storage: natsjs.FileStorage})
	if err != nil {
		return nil, err
	}
	consumers := make([]natsjs.Consumer, c.o.Partitions)
	for p := range c.o.Partitions {
		// While a cluster forms, a lookup may find no consumer leader yet.
		err := c.o.Backoff.Retry(ctx, "open inbound consumer", 2*time.Second, func(ctx context.Context) error {
			cons, err := inboundConsumer(ctx, c.js, floors, p, c.o.Inbound)
			consumers[p] = cons
			return err
		}, c.waiting("open inbound consumer "+strconv.Itoa(p)))
		if err != nil {
			return nil, fmt.Errorf("inbound consumer %d: %w", p, err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ps.mu.Lock()
	ps.consumers, ps.pipe, ps.started, ps.stops = consumers, pipe, true, map[int]func(){}
	ps.cancelFloors, ps.floorsDone = cancel, make(chan struct{})
	ps.mu.Unlock()
	go func() {
		defer close(ps.floorsDone)
		ps.recordFloors(runCtx, floors)
	}()
	ps.reconcile()
	return ps.stop, nil
}

// reconcile pulls the partitions this node owns and stops pulling those it
// no longer owns. Messages a stopped puller had not acknowledged go to the
// next owner after the acknowledgement deadline.
func (ps *partitions) reconcile() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.started || ps.stopped {
		return
	}
	c := ps.c
	live := c.members.live()
	for p, cons := range ps.consumers {
		owned := rendezvous(live, p) == c.o.Self
		stop, pulling := ps.stops[p]
		switch {
		case owned && !pulling:
			stop, err := ps.pipe.Consume(cons, natsjs.PullMaxMessages(c.o.InboundPullBatch))
			if err != nil {
				c.o.Log.Warn("inbound partition not pulled", "partition", p, "err", err)
				continue
			}
			ps.stops[p] = stop
		case !owned && pulling:
			delete(ps.stops, p)
			// Its handlers finish (or see their context cancelled) on their
			// own: the membership watcher calling this must not wait.
			ps.stopping.Add(1)
			go func() { defer ps.stopping.Done(); stop() }()
		}
	}
	c.o.Log.Debug("inbound partitions pulled", "count", len(ps.stops))
}

// stop stops pulling every partition, waits for their handlers, and
// records the final floors.
func (ps *partitions) stop() {
	ps.mu.Lock()
	ps.stopped = true
	stops := ps.stops
	ps.stops = map[int]func(){}
	ps.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	ps.stopping.Wait()
	ps.cancelFloors()
	<-ps.floorsDone
}

// owned returns the partitions this node pulls.
func (ps *partitions) owned() []int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]int, 0, len(ps.stops))
	for p := range ps.stops {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// recordFloors writes the floors of the partitions this node pulls, every
// floor interval until ctx ends, and once more when it does (a graceful
// stop hands over with an exact floor).
func (ps *partitions) recordFloors(ctx context.Context, floors natsjs.KeyValue) {
	// written holds every partition this node has pulled: by the final
	// record, a stopping node pulls none any more. Any node may write a
	// partition's floor, since it reads it from the shared consumer.
	written := map[int]uint64{}
	record := func(ctx context.Context) {
		for _, p := range ps.owned() {
			if _, ok := written[p]; !ok {
				written[p] = 0
			}
		}
		for p := range written {
			info, err := ps.consumers[p].Info(ctx)
			if err != nil {
				continue
			}
			if f := info.AckFloor.Stream; f > written[p] {
				if err := putFloor(ctx, floors, p, f); err == nil {
					written[p] = f
				}
			}
		}
	}
	t := time.NewTicker(ps.c.o.FloorInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			record(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			record(fctx)
			cancel()
			return
		}
	}
}

func floorKey(p int) string { return fmt.Sprintf("p%d", p) }

func putFloor(ctx context.Context, floors natsjs.KeyValue, p int, floor uint64) error {
	_, err := floors.Put(ctx, floorKey(p), []byte(strconv.FormatUint(floor, 10)))
	return err
}

// getFloor returns partition p's recorded floor, 0 if none was recorded.
func getFloor(ctx context.Context, floors natsjs.KeyValue, p int) (uint64, error) {
	e, err := floors.Get(ctx, floorKey(p))
	switch {
	case errors.Is(err, natsjs.ErrKeyNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	floor, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("floor of partition %d: %w", p, err)
	}
	return floor, nil
}

// inboundConsumer returns partition p's consumer, creating it from the
// recorded floor when it is missing. A consumer an earlier version kept in
// a file is replaced by a memory one starting after its own floor.
func inboundConsumer(ctx context.Context, js natsjs.JetStream, floors natsjs.KeyValue, p int, l jetstream.ConsumerLimits) (natsjs.Consumer, error) {
	name := jetstream.InboundConsumerName(p)
	var floor uint64
	cons, err := js.Consumer(ctx, jetstream.StreamInbound, name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.Config.MemoryStorage {
			return cons, nil
		}
		floor = info.AckFloor.Stream
		if err := putFloor(ctx, floors, p, floor); err != nil {
			return nil, err
		}
		if err := js.DeleteConsumer(ctx, jetstream.StreamInbound, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
			return nil, err
		}
	case errors.Is(err, natsjs.ErrConsumerNotFound):
		if floor, err = getFloor(ctx, floors, p); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	cons, err = js.CreateConsumer(ctx, jetstream.StreamInbound, jetstream.InboundConsumer(p, l, floor))
	if errors.Is(err, natsjs.ErrConsumerExists) {
		// Another node recreated it first (from the same floor or a later one).
		return js.Consumer(ctx, jetstream.StreamInbound, name)
	}
	return cons, err
}
