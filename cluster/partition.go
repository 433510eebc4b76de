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
	// opens[p] opens partition p's consumer again if it is deleted.
	opens []func(context.Context) (natsjs.Consumer, error)
	pipe  *jetstream.Pipeline
	stops map[int]func()
	// stopping counts partitions whose handlers are still finishing after
	// this node stopped pulling them.
	stopping sync.WaitGroup

	stopFloors func()
}

func (ps *partitions) start(ctx context.Context, pipe *jetstream.Pipeline) (func(), error) {
	c := ps.c
	floors, err := jetstream.OpenFloors(ctx, c.js, c.o.Backoff, c.o.Replicas, c.waiting("open bucket "+jetstream.FloorsBucket))
	if err != nil {
		return nil, err
	}
	consumers := make([]natsjs.Consumer, c.o.Partitions)
	opens := make([]func(context.Context) (natsjs.Consumer, error), c.o.Partitions)
	for p := range c.o.Partitions {
		opens[p] = func(ctx context.Context) (natsjs.Consumer, error) {
			return inboundConsumer(ctx, c.js, floors, p, c.o.Inbound)
		}
		// While a cluster forms, a lookup may find no consumer leader yet.
		err := c.o.Backoff.Retry(ctx, "open inbound consumer", 2*time.Second, func(ctx context.Context) error {
			cons, err := opens[p](ctx)
			consumers[p] = cons
			return err
		}, c.waiting("open inbound consumer "+strconv.Itoa(p)))
		if err != nil {
			return nil, fmt.Errorf("inbound consumer %d: %w", p, err)
		}
	}
	ps.mu.Lock()
	ps.consumers, ps.opens, ps.pipe, ps.started, ps.stops = consumers, opens, pipe, true, map[int]func(){}
	ps.stopFloors = floors.Record(c.js, jetstream.StreamInbound, c.o.FloorInterval, ps.watched())
	ps.mu.Unlock()
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
			// A handle names the consumer: one opened again since is
			// pulled through it as well.
			stop, err := ps.pipe.ConsumeDurable(cons, ps.opens[p], natsjs.PullMaxMessages(c.o.InboundPullBatch))
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
	ps.stopFloors()
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

// watched names the consumers of the partitions this node pulls or has
// pulled, by floor key: by the final record, a stopping node pulls none
// any more.
func (ps *partitions) watched() func() map[string]string {
	seen := map[string]string{}
	return func() map[string]string {
		for _, p := range ps.owned() {
			seen[floorKey(p)] = jetstream.InboundConsumerName(p)
		}
		return seen
	}
}

func floorKey(p int) string { return fmt.Sprintf("p%d", p) }

// inboundConsumer returns partition p's consumer, creating it from the
// recorded floor when it is missing. A consumer an earlier version kept in
// a file is replaced by a memory one starting after its own floor.
func inboundConsumer(ctx context.Context, js natsjs.JetStream, floors *jetstream.Floors, p int, l jetstream.ConsumerLimits) (natsjs.Consumer, error) {
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
		if err := floors.Put(ctx, floorKey(p), floor); err != nil {
			return nil, err
		}
		if err := js.DeleteConsumer(ctx, jetstream.StreamInbound, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
			return nil, err
		}
	case errors.Is(err, natsjs.ErrConsumerNotFound):
		if floor, err = floors.Get(ctx, floorKey(p)); err != nil {
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
