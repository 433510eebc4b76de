package query

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// projector keeps the bbolt read model in step with the order events
// stream. It resumes from the sequence stored with the read model, in the
// same transaction as the model, so every event counts exactly once; an
// ordered consumer restarts itself on any gap in delivery.
type projector struct {
	db     *store.DB
	stream natsjs.Stream
	log    *slog.Logger
	// commitEvery spaces the read model's transactions under load. Each
	// commit rewrites every page it touched (and, where the file is not
	// guarded by a boot marker, costs two fsyncs), so committing whatever
	// single event has just arrived would spend the disk on overhead;
	// waiting for more turns a stream of events into at most fifty commits
	// a second at the default 20 ms (which took 11% less CPU per order in
	// oms bench than 5 ms, when every commit fsynced). A read-your-writes lookup may
	// wait that much longer; a quiet stream is never delayed, since the
	// wait only applies when the previous commit was that recent.
	commitEvery time.Duration
	// retry paces the reopening of a consumer that failed.
	retry jetstream.Backoff
	// deadLetter records an event the read model could not apply.
	deadLetter func(context.Context, jetstream.Msg, error) error

	// running guards starting and stopping (a rebuild and the node's stop
	// may both).
	running sync.Mutex
	applied atomic.Uint64
	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each applied batch
	cancel  context.CancelFunc
	done    chan struct{}
}

func newProjector(db *store.DB, stream natsjs.Stream, commitEvery time.Duration, retry jetstream.Backoff,
	deadLetter func(context.Context, jetstream.Msg, error) error, log *slog.Logger) *projector {
	return &projector{db: db, stream: stream, commitEvery: commitEvery, retry: retry, deadLetter: deadLetter, log: log,
		changed: make(chan struct{})}
}

// start runs the projection from the stored sequence.
func (p *projector) start(ctx context.Context) error {
	p.running.Lock()
	defer p.running.Unlock()
	oc, st, err := p.consumer(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go p.run(runCtx, oc, st.Gaps)
	return nil
}

// consumer opens an ordered consumer just after the stored sequence.
func (p *projector) consumer(ctx context.Context) (natsjs.Consumer, store.ReadModelState, error) {
	st, err := p.db.ReadModel()
	if err != nil {
		return nil, st, fmt.Errorf("read model: %w", err)
	}
	p.applied.Store(st.Applied)
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{jetstream.OrderEventsPrefix + ">"}}
	if st.Applied > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, st.Applied+1
	}
	oc, err := p.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, st, fmt.Errorf("projection consumer: %w", err)
	}
	return oc, st, nil
}

// stop ends the projection and waits for it.
func (p *projector) stop() {
	p.running.Lock()
	defer p.running.Unlock()
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

// run consumes until ctx ends. Messages arrive through a channel that the
// writer drains in batches: one bbolt transaction for whatever is waiting,
// so a quiet stream is projected at once and a busy one in bulk. If a
// batch cannot be written, the consumer is reopened after what is stored.
func (p *projector) run(ctx context.Context, oc natsjs.Consumer, gaps uint64) {
	defer close(p.done)
	failures := 0
	for ctx.Err() == nil {
		if oc == nil {
			var err error
			if oc, _, err = p.consumer(ctx); err != nil {
				p.log.Warn("projection consumer", "err", err)
				failures++
				p.retry.Wait(ctx, failures)
				continue
			}
		}
		ch := make(chan natsjs.Msg, 1024)
		stopped := make(chan struct{})
		cc, err := oc.Consume(func(m natsjs.Msg) {
			select {
			case ch <- m:
			case <-stopped:
			}
		}, jetstream.ConsumeErrors(p.log, "projection"))
		if err != nil {
			p.log.Warn("projection consume", "err", err)
			oc = nil
			failures++
			p.retry.Wait(ctx, failures)
			continue
		}
		err = p.drain(ctx, ch, &gaps)
		close(stopped)
		cc.Stop()
		oc = nil
		if err != nil {
			p.log.Error("read model not updated; restarting projection", "err", err)
			failures++
			p.retry.Wait(ctx, failures)
		}
	}
}

func (p *projector) drain(ctx context.Context, ch <-chan natsjs.Msg, gaps *uint64) error {
	events := make([]store.AppliedEvent, 0, 1024)
	msgs := make(map[uint64]natsjs.Msg, 1024)
	linger := time.NewTimer(0)
	defer linger.Stop()
	var lastCommit time.Time
	for {
		events = events[:0]
		clear(msgs)
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			events = p.collect(ctx, events, msgs, m)
		}
		if wait := p.commitEvery - time.Since(lastCommit); wait > 0 {
			linger.Reset(wait)
		gather:
			for len(events) < cap(events) {
				select {
				case m := <-ch:
					events = p.collect(ctx, events, msgs, m)
				case <-linger.C:
					break gather
				case <-ctx.Done():
					return nil
				}
			}
			linger.Stop() // since Go 1.23 no stale fire survives Stop or Reset
		}
	more:
		for len(events) < cap(events) {
			select {
			case m := <-ch:
				events = p.collect(ctx, events, msgs, m)
			default:
				break more
			}
		}
		if len(events) == 0 {
			continue
		}
		lastCommit = time.Now()
		if _, err := p.db.ApplyEvents(events); err != nil {
			// Find what the store refuses, one event at a time: those are
			// dead-lettered and skipped, and the projection goes on.
			if err := p.applyEach(ctx, events, msgs, err); err != nil {
				return err
			}
		}
		if st, err := p.db.ReadModel(); err == nil {
			if st.Gaps > *gaps {
				p.log.Warn("gap in the order events stream", "gaps", st.Gaps, "applied", st.Applied)
				*gaps = st.Gaps
			}
			p.applied.Store(st.Applied)
		}
		p.mu.Lock()
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

func (p *projector) collect(ctx context.Context, events []store.AppliedEvent, msgs map[uint64]natsjs.Msg, m natsjs.Msg) []store.AppliedEvent {
	md, err := m.Metadata()
	if err != nil {
		return events
	}
	e, err := order.DecodeEvent(m.Data())
	if err != nil {
		p.deadLetterEvent(ctx, md.Sequence.Stream, m, err)
		return append(events, store.AppliedEvent{Seq: md.Sequence.Stream, Skip: true})
	}
	if e.OrderID == "" {
		e.OrderID = strings.TrimPrefix(m.Subject(), jetstream.OrderEventsPrefix)
	}
	msgs[md.Sequence.Stream] = m
	return append(events, store.AppliedEvent{Seq: md.Sequence.Stream, Event: e})
}

// applyEach applies a batch the store refused event by event, skipping
// (and dead-lettering) each it refuses alone. It fails only when the store
// refuses to record anything at all.
func (p *projector) applyEach(ctx context.Context, events []store.AppliedEvent, msgs map[uint64]natsjs.Msg, batchErr error) error {
	p.log.Warn("read model refused a batch; applying its events one by one", "events", len(events), "err", batchErr)
	for _, ae := range events {
		if _, err := p.db.ApplyEvents([]store.AppliedEvent{ae}); err != nil {
			p.deadLetterEvent(ctx, ae.Seq, msgs[ae.Seq], err)
			if _, err := p.db.ApplyEvents([]store.AppliedEvent{{Seq: ae.Seq, Skip: true}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// deadLetterEvent records an event the read model cannot apply, with the
// reason; the read model then moves past it.
func (p *projector) deadLetterEvent(ctx context.Context, seq uint64, m natsjs.Msg, reason error) {
	p.log.Error("order event skipped by the read model; it is in the dead-letter stream", "seq", seq, "reason", reason)
	if m == nil {
		return
	}
	if err := p.deadLetter(ctx, m, reason); err != nil {
		p.log.Error("read model: dead letter not stored", "seq", seq, "err", err)
	}
}

// waitFor blocks until the read model has applied sequence seq.
func (p *projector) waitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if p.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("read model at %d, waiting for %d: %w", p.applied.Load(), seq, ctx.Err())
		}
	}
}
