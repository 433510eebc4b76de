package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
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
// blocks its partition. A standalone node, which owns every partition for
// good, pulls them all through one consumer instead (startAll).
type partitions struct {
	c *Cluster

	mu      sync.Mutex
	started bool
	stopped bool
	// stopAll stops the consumer of every partition, when this node pulls
	// them through one.
	stopAll   func()
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
	if c.o.Standalone {
		return ps.startAll(ctx, floors, pipe)
	}
	// The consumer of every partition a standalone run of this data left
	// behind: its floor counts for each partition, and it must not pull
	// alongside the partitions' own.
	err = c.o.Backoff.Retry(ctx, "retire inbound consumer", 2*time.Second, func(ctx context.Context) error {
		_, err := jetstream.Retire(ctx, c.js, floors, jetstream.StreamInbound, jetstream.InboundAllConsumerName, allFloorKey)
		return err
	}, c.waiting("retire inbound consumer "+jetstream.InboundAllConsumerName))
	if err != nil {
		return nil, fmt.Errorf("inbound consumer %s: %w", jetstream.InboundAllConsumerName, err)
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

// startAll pulls every partition through the one consumer of them all,
// handling each order's provider events in order, as many orders at once
// as there are partitions (the partitions' consumers handled one event
// each at a time). Its floor counts for every partition, so a node that
// later joins a cluster starts each partition's consumer from it.
func (ps *partitions) startAll(ctx context.Context, floors *jetstream.Floors, pipe *jetstream.Pipeline) (func(), error) {
	c := ps.c
	open := func(ctx context.Context) (natsjs.Consumer, error) {
		return inboundAllConsumer(ctx, c.js, floors, c.o.Partitions, c.o.Inbound)
	}
	var cons natsjs.Consumer
	err := c.o.Backoff.Retry(ctx, "open inbound consumer", 2*time.Second, func(ctx context.Context) error {
		var err error
		cons, err = open(ctx)
		return err
	}, c.waiting("open inbound consumer "+jetstream.InboundAllConsumerName))
	if err != nil {
		return nil, fmt.Errorf("inbound consumer %s: %w", jetstream.InboundAllConsumerName, err)
	}
	// Registered before the pull starts, so that it stops after it and its
	// last record is the exact floor.
	stopFloors := floors.Record(c.js, jetstream.StreamInbound, c.o.FloorInterval,
		func() map[string]string { return map[string]string{allFloorKey: jetstream.InboundAllConsumerName} })
	all := *pipe
	all.Workers = c.o.Partitions
	stop, err := all.ConsumeDurable(cons, open, natsjs.PullMaxMessages(min(c.o.InboundPullBatch*c.o.Partitions, allPullBatch)))
	if err != nil {
		stopFloors()
		return nil, err
	}
	ps.mu.Lock()
	ps.started, ps.stopAll, ps.stopFloors, ps.stops = true, stop, stopFloors, map[int]func(){}
	ps.mu.Unlock()
	c.o.Log.Debug("inbound partitions pulled through one consumer", "count", c.o.Partitions)
	return ps.stop, nil
}

// allPullBatch bounds the messages one pull of the consumer of every
// partition asks for, as the reactor's batch does for the order events.
const allPullBatch = 256

// reconcile pulls the partitions this node owns and stops pulling those it
// no longer owns. Messages a stopped puller had not acknowledged go to the
// next owner after the acknowledgement deadline.
func (ps *partitions) reconcile() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.started || ps.stopped || ps.stopAll != nil {
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
	stopAll := ps.stopAll
	ps.mu.Unlock()
	if stopAll != nil {
		stopAll()
	}
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
	if ps.stopAll != nil && !ps.stopped {
		out := make([]int, ps.c.o.Partitions)
		for p := range out {
			out[p] = p
		}
		return out
	}
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

// allFloorKey is the floor key of the consumer of every partition.
const allFloorKey = "all"

// floorOf returns where partition p's provider events are all handled up
// to: the higher of its own recorded floor and that of the consumer of
// every partition. Each was, when written, at or below every partition's
// true floor, which never falls, so the higher is too.
func floorOf(ctx context.Context, floors *jetstream.Floors, p int) (uint64, error) {
	own, err := floors.Get(ctx, floorKey(p))
	if err != nil {
		return 0, err
	}
	all, err := floors.Get(ctx, allFloorKey)
	return max(own, all), err
}

// inboundConsumer returns partition p's consumer, creating it from the
// recorded floor when it is missing. A consumer an earlier version kept in
// a file is replaced by a memory one starting after its own floor.
func inboundConsumer(ctx context.Context, js natsjs.JetStream, floors *jetstream.Floors, p int, l jetstream.ConsumerLimits) (natsjs.Consumer, error) {
	name := jetstream.InboundConsumerName(p)
	cons, err := js.Consumer(ctx, jetstream.StreamInbound, name)
	switch {
	case err == nil && cons.CachedInfo().Config.MemoryStorage:
		return cons, nil
	case err == nil:
		if _, err := jetstream.Retire(ctx, js, floors, jetstream.StreamInbound, name, floorKey(p)); err != nil {
			return nil, err
		}
	case !errors.Is(err, natsjs.ErrConsumerNotFound):
		return nil, err
	}
	floor, err := floorOf(ctx, floors, p)
	if err != nil {
		return nil, err
	}
	cons, err = js.CreateConsumer(ctx, jetstream.StreamInbound, jetstream.InboundConsumer(p, l, floor))
	if errors.Is(err, natsjs.ErrConsumerExists) {
		// Another node recreated it first (from the same floor or a later one).
		return js.Consumer(ctx, jetstream.StreamInbound, name)
	}
	return cons, err
}

// inboundAllConsumer returns the consumer of every partition, creating it
// when it is missing to start after the lowest of the partitions' floors.
// The partitions' own consumers, left by a run of this data in a cluster,
// are retired first: their floors recorded, so that none is started past.
func inboundAllConsumer(ctx context.Context, js natsjs.JetStream, floors *jetstream.Floors, partitions int, l jetstream.ConsumerLimits) (natsjs.Consumer, error) {
	cons, err := js.Consumer(ctx, jetstream.StreamInbound, jetstream.InboundAllConsumerName)
	switch {
	case err == nil:
		return cons, nil
	case !errors.Is(err, natsjs.ErrConsumerNotFound):
		return nil, err
	}
	// The lowest of max(own, all) over the partitions is max(lowest own,
	// all): the shared floor is read once.
	lowest := uint64(math.MaxUint64)
	for p := range partitions {
		if _, err := jetstream.Retire(ctx, js, floors, jetstream.StreamInbound, jetstream.InboundConsumerName(p), floorKey(p)); err != nil {
			return nil, err
		}
		own, err := floors.Get(ctx, floorKey(p))
		if err != nil {
			return nil, err
		}
		lowest = min(lowest, own)
	}
	all, err := floors.Get(ctx, allFloorKey)
	if err != nil {
		return nil, err
	}
	start := max(lowest, all)
	cons, err = js.CreateConsumer(ctx, jetstream.StreamInbound, jetstream.InboundAllConsumer(l, partitions, start))
	if errors.Is(err, natsjs.ErrConsumerExists) {
		return js.Consumer(ctx, jetstream.StreamInbound, jetstream.InboundAllConsumerName)
	}
	return cons, err
}
