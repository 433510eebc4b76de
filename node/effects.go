package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/reactor"
)

// The effects of an order event run on the node that appended it (a
// jetstream.Queue the order actors hand each stored event to), and each
// node records its settled floor in jetstream.FloorsBucket under
// effectsFloorPrefix + its name. A node hands over again, on start, its
// own events after its floor; a live node hands over a dead node's, the
// one node that owns the dead node's floor key, then deletes that key.
// legacyReactorFloor is where the reactor's consumer of an earlier
// version left off: its events after it are handed over again, whoever
// appended them.
const (
	effectsFloorPrefix = "reactor."
	legacyReactorFloor = "reactor"
)

// effectsDrain bounds how long a stopping node waits for the effects
// handed over to run: what is left runs again on its next start.
const effectsDrain = 10 * time.Second

// effectsTickTimeout bounds each round of resolving doubts, recording the
// floor and looking for dead nodes' floors.
const effectsTickTimeout = 5 * time.Second

// doubtDelay is how long after an order append whose acknowledgement was
// lost the node reads the stream to learn whether it was stored.
const doubtDelay = 10 * time.Second

// effects is the node's in-process reactor: the queue and its floor.
type effects struct {
	n      *Node
	q      *jetstream.Queue
	floors *jetstream.Floors
	self   string
	// floor and unsettled are what this node recorded when it last ran.
	floor     uint64
	unsettled []uint64
	// recovering is set while a dead node's events are handed over.
	recovering atomic.Bool
	// last is where the stream ended when the node started: an earlier
	// version's events are all at or below it.
	last uint64
}

// openEffects reads this node's record (recording where the stream ends
// if it has none, so that a crash before the first record still has one)
// and starts the queue from its floor; handle runs each event's effects.
func (n *Node) openEffects(ctx context.Context, floors *jetstream.Floors, handle jetstream.Handler) (*effects, uint64, error) {
	t := n.cfg.Tuning
	self := n.cfg.NodeName
	var last, floor uint64
	var unsettled []uint64
	// While a cluster forms, JetStream may not answer yet.
	err := n.retry().Retry(ctx, "read the effects floor", 2*time.Second, func(ctx context.Context) error {
		stream, err := n.js.Stream(ctx, jetstream.StreamOrders)
		if err != nil {
			return err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State.LastSeq
		rec, err := floors.Recorded(ctx, effectsFloorPrefix+self)
		if err != nil || rec.Revision > 0 {
			// Past the stream's end only if the stream lost what it held (a
			// restored copy): what is appended now runs from where it ends.
			floor, unsettled = min(rec.Floor, last), rec.Unsettled
			return err
		}
		floor = last
		return floors.Put(ctx, effectsFloorPrefix+self, floor)
	}, n.waitingFor("read the effects floor"))
	if err != nil {
		return nil, 0, err
	}
	q := n.pipeline("reactor", handle, t.ReactorWorkers, reactor.Key, reactorAttrs).Queue(jetstream.StreamOrders, floor, t.EffectsMaxHeld)
	return &effects{n: n, q: q, floors: floors, self: self, floor: floor, unsettled: unsettled}, last, nil
}

// start retires an earlier version's reactor consumer, hands over again
// the events this node's record lists unsettled and its events after its
// floor up to last (before the node takes commands, so they run before
// any later event of their order), and records the floor every
// --floor-interval until the returned stop.
func (e *effects) start(ctx context.Context, last uint64) (stop func(), err error) {
	n := e.n
	if err := n.retry().Retry(ctx, "retire the reactor consumer", 2*time.Second, func(ctx context.Context) error {
		_, err := jetstream.Retire(ctx, n.js, e.floors, jetstream.StreamOrders, jetstream.ConsumerReactor, legacyReactorFloor)
		return err
	}, n.waitingFor("retire the reactor consumer")); err != nil {
		return nil, err
	}
	if e.floor < last || len(e.unsettled) > 0 {
		// Tried again from the floor if the stream stops answering midway:
		// what was handed over twice runs twice, harmlessly.
		handed := 0
		if err := n.retry().Retry(ctx, "run the effects cut short", time.Minute, func(ctx context.Context) (err error) {
			handed, err = e.handOver(ctx, jetstream.Recorded{Floor: e.floor, Unsettled: e.unsettled}, last, e.self, nil)
			return err
		}, n.waitingFor("run the effects cut short")); err != nil {
			return nil, err
		}
		if handed > 0 {
			n.log.Warn("effects cut short by the last stop run again", "events", handed, "after", e.floor)
		}
	}
	e.q.Advance(last)
	e.last = last
	loopCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(n.cfg.Tuning.FloorInterval)
		defer t.Stop()
		for {
			// Bounded, so that a stream that does not answer delays the
			// next record, never stops them.
			tctx, done := context.WithTimeout(loopCtx, effectsTickTimeout)
			e.q.Resolve(tctx)
			e.record(tctx)
			e.recoverDead(tctx, loopCtx, &wg)
			done()
			select {
			case <-t.C:
			case <-loopCtx.Done():
				return
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		e.q.Stop(effectsDrain)
		rctx, done := context.WithTimeout(context.Background(), 2*time.Second)
		e.record(rctx)
		done()
	}, nil
}

// record writes the settled floor, risen or not: a floor written lately
// tells the other nodes this one is alive, whatever their view of the
// members says, and one deleted by a node that thought otherwise is back
// at once.
func (e *effects) record(ctx context.Context) {
	floor, unsettled := e.q.Settled()
	_ = e.floors.PutUnsettled(ctx, effectsFloorPrefix+e.self, floor, unsettled)
}

// handOver pushes to the queue the order events a record names: those
// after its floor, up to to (0: the last stored), that node appended
// (every one, if node is empty), and its unsettled ones; running, if set,
// counts those not yet run.
func (e *effects) handOver(ctx context.Context, rec jetstream.Recorded, to uint64, node string, running *sync.WaitGroup) (int, error) {
	handed := 0
	push := func(subject string, data []byte, hdr nats.Header, seq uint64) error {
		var settled func()
		if running != nil {
			// However many there are, the queue holds at most its bound:
			// past it, those not waited for are read back later.
			if err := e.q.Room(ctx); err != nil {
				return err
			}
			running.Add(1)
			settled = running.Done
		}
		e.q.Push(subject, data, hdr, seq, settled)
		handed++
		return nil
	}
	if len(rec.Unsettled) > 0 {
		stream, err := e.n.js.Stream(ctx, jetstream.StreamOrders)
		if err != nil {
			return handed, err
		}
		for _, seq := range rec.Unsettled {
			m, err := stream.GetMsg(ctx, seq)
			switch {
			case errors.Is(err, natsjs.ErrMsgNotFound):
				continue // deleted since: nothing to run
			case err != nil:
				return handed, err
			}
			if strings.HasPrefix(m.Subject, jetstream.OrderEventsPrefix) {
				if err := push(m.Subject, m.Data, m.Header, m.Sequence); err != nil {
					return handed, err
				}
			}
		}
	}
	_, err := jetstream.Replay(ctx, e.n.js, jetstream.ReplayOptions{Stream: jetstream.StreamOrders,
		Subject: jetstream.OrderEventsPrefix + ">", FromSeq: rec.Floor + 1, ToSeq: to}, func(m natsjs.Msg, md *natsjs.MsgMetadata) error {
		if node == "" || m.Headers().Get(api.NodeHeader) == node {
			return push(m.Subject(), m.Data(), m.Headers(), md.Sequence.Stream)
		}
		return nil
	})
	return handed, err
}

// recoverDead starts, unless one is at work, the handing over of the
// events of the nodes whose floor this node owns and that are not alive
// (and of the legacy reactor floor), one node at a time.
// It lists the floors within ctx; the handing over runs until stopping.
func (e *effects) recoverDead(ctx, stopping context.Context, wg *sync.WaitGroup) {
	if !e.recovering.CompareAndSwap(false, true) {
		return
	}
	keys, err := e.floors.Keys(ctx, effectsFloorPrefix+"*")
	if err == nil {
		var legacy []string
		if legacy, err = e.floors.Keys(ctx, legacyReactorFloor); err == nil {
			keys = append(keys, legacy...)
		}
	}
	var dead []string
	for _, key := range keys {
		node, ok := strings.CutPrefix(key, effectsFloorPrefix)
		if ok && (node == e.self || e.n.cluster.Live(node)) {
			continue
		}
		if e.n.cluster.Owns(key) {
			dead = append(dead, key)
		}
	}
	if err != nil || len(dead) == 0 {
		e.recovering.Store(false)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer e.recovering.Store(false)
		for _, key := range dead {
			if err := e.recover(stopping, key); err != nil && stopping.Err() == nil {
				e.n.log.Warn("effects of a stopped node: not all run; will try again", "floor", key, "err", err)
			}
		}
	}()
}

// recover hands over the events after key's floor of the node it names
// (every node's, for the legacy floor), waits for them to run, and
// deletes the floor, unless its node has written it since. A floor
// written less than two member timeouts ago is left: its node may have
// started so recently that this node does not see it alive yet.
func (e *effects) recover(ctx context.Context, key string) error {
	rec, err := e.floors.Recorded(ctx, key)
	if err != nil || rec.Revision == 0 || (key != legacyReactorFloor && time.Since(rec.At) < 2*e.n.cfg.Tuning.MemberTimeout) {
		return err
	}
	// A dead node appends nothing more; an earlier version's reactor ran
	// the effects of events up to where this node started.
	node, to := strings.TrimPrefix(key, effectsFloorPrefix), uint64(0)
	if key == legacyReactorFloor {
		node, to = "", e.last
	}
	var running sync.WaitGroup
	handed, err := e.handOver(ctx, rec, to, node, &running)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := e.floors.DeleteIf(ctx, key, rec.Revision); err != nil {
		// Written since: its node came back (and runs its own events).
		return err
	}
	e.n.log.Info("effects of a stopped node run", "floor", key, "after", rec.Floor, "events", handed)
	return nil
}
