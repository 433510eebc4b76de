package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Msg is what a handler sees of a delivered message. natsjs.Msg satisfies
// it, and so can a plain struct in a test: handlers never acknowledge, the
// runtime does.
type Msg interface {
	Subject() string
	Data() []byte
	Headers() nats.Header
	Metadata() (*natsjs.MsgMetadata, error)
}

// Handler processes one message. Returning nil acknowledges it; an error
// the pipeline's classifier calls retryable redelivers it with backoff
// until MaxAttempts; any other error, or a panic, sends it to the
// dead-letter stream with the reason, and the consumer goes on.
type Handler func(ctx context.Context, m Msg) error

// Pipeline runs one durable consumer's handler with everything every
// consumer needs around it: a timeout per message, recovery from panics,
// the one retry policy, dead letters after a bounded number of attempts,
// and a log line naming what the message was about.
type Pipeline struct {
	// Name is the source of its dead letters (oms.deadletter.<Name>) and
	// of its log lines.
	Name   string
	Handle Handler
	// JS stores dead letters.
	JS      natsjs.JetStream
	Log     *slog.Logger
	Timeout time.Duration
	// MaxAttempts bounds deliveries of a message that keeps failing.
	MaxAttempts int
	Backoff     Backoff
	// Retryable classifies errors; nil: every error is retryable.
	Retryable func(error) bool
	// Workers > 0 handles messages on that many goroutines, every message
	// with the same Key on the same one, in delivery order; 0 handles them
	// one at a time in delivery order.
	Workers int
	Key     func(Msg) string
	// Attrs names what a message is about in log lines (order_id).
	Attrs func(Msg) []any
	// Observe, if set, hears how each message was settled (ok, retry,
	// dead_letter) and how long its handler took.
	Observe func(pipeline, outcome string, took time.Duration)
	// AckWait is the consumer's acknowledgement wait. A handler may take
	// up to Timeout, longer than that when it waits out a stream leader's
	// election; one still at work after a third of it tells the server so
	// (+WPI), every third, so the message is not delivered again to
	// another worker or node while it is handled. 0: never.
	AckWait time.Duration
}

// handling is the message one goroutine of a pipeline is at work on, and
// since when, for the pipeline to tell the server it is still at work.
type handling struct {
	mu    sync.Mutex
	msg   natsjs.Msg
	since time.Time
}

func (h *handling) begin(m natsjs.Msg) {
	h.mu.Lock()
	h.msg, h.since = m, time.Now()
	h.mu.Unlock()
}

func (h *handling) end() {
	h.mu.Lock()
	h.msg = nil
	h.mu.Unlock()
}

// keepWorking tells the server, every third of the ack wait until ctx
// ends, of each message handled for longer than that.
func (p *Pipeline) keepWorking(ctx context.Context, slots []handling) {
	every := p.AckWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for i := range slots {
				h := &slots[i]
				h.mu.Lock()
				m := h.msg
				if m != nil && now.Sub(h.since) < every {
					m = nil
				}
				h.mu.Unlock()
				if m != nil { // outside the lock: the worker goes on meanwhile
					_ = m.InProgress()
				}
			}
		}
	}
}

// errPanicked marks a handler that panicked: never retried, since the
// same message would panic again.
var errPanicked = errors.New("handler panicked")

// Consume pulls from cons until the returned stop is called. stop stops
// pulling, cancels the handlers' context and waits for them to return;
// messages they did not finish are redelivered after the ack wait.
func (p *Pipeline) Consume(cons natsjs.Consumer, opts ...natsjs.PullConsumeOpt) (stop func(), err error) {
	return p.consume(cons, nil, opts)
}

// ConsumeDurable is Consume, with cons opened again by reopen (with the
// pipeline's backoff, until it succeeds or stop is called) when the server
// reports it deleted: nats.go stops a Consume for good then, which would
// stall the pipeline until the node restarted. reopen decides where a
// recreated consumer starts (OpenDurable: after its recorded floor).
func (p *Pipeline) ConsumeDurable(cons natsjs.Consumer, reopen func(context.Context) (natsjs.Consumer, error), opts ...natsjs.PullConsumeOpt) (stop func(), err error) {
	return p.consume(cons, reopen, opts)
}

func (p *Pipeline) consume(cons natsjs.Consumer, reopen func(context.Context) (natsjs.Consumer, error), opts []natsjs.PullConsumeOpt) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	// running counts the handlers at work; admit guards it, so that no
	// handler starts once stop has begun to wait.
	var running sync.WaitGroup
	var admit sync.RWMutex
	stopped := false
	// One slot per goroutine that handles messages: the callback's own
	// when it handles them, else each worker's.
	slots := make([]handling, max(1, p.Workers))
	if p.AckWait > 0 && p.Timeout >= p.AckWait/3 {
		running.Add(1)
		go func() { defer running.Done(); p.keepWorking(ctx, slots) }()
	}
	callback := func(m natsjs.Msg) {
		admit.RLock()
		if stopped {
			admit.RUnlock()
			return
		}
		running.Add(1)
		admit.RUnlock()
		defer running.Done()
		p.process(ctx, m, &slots[0])
	}
	if p.Workers > 0 {
		workers := make([]chan natsjs.Msg, p.Workers)
		for i := range workers {
			workers[i] = make(chan natsjs.Msg, 8)
			running.Add(1)
			go func(ch chan natsjs.Msg, h *handling) {
				defer running.Done()
				for {
					select {
					case m := <-ch:
						p.process(ctx, m, h)
					case <-ctx.Done():
						return
					}
				}
			}(workers[i], &slots[i])
		}
		callback = func(m natsjs.Msg) {
			w := 0
			if p.Key != nil {
				w = PartitionOf(p.Key(m), len(workers))
			}
			select {
			case workers[w] <- m:
			case <-ctx.Done():
			}
		}
	}
	halt := func() {
		admit.Lock()
		stopped = true
		admit.Unlock()
		cancel()
		running.Wait()
	}
	// deleted hears nats.go report the consumer deleted (while a pull
	// waited there); unanswered hears a pull go unanswered, which is also
	// what a consumer deleted with no pull waiting looks like from then on
	// (nothing serves a missing consumer's pulls, and nats.go sends them
	// for ever), but as well a consumer without a leader for a moment: the
	// supervisor below then asks, at most once a second, whether it still
	// exists. A deleted one it opens again and resumes.
	deleted, unanswered := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	onErr := natsjs.ConsumeErrHandler(func(_ natsjs.ConsumeContext, err error) {
		p.Log.Warn(p.Name+": consume", "err", err)
		switch {
		case reopen == nil:
		case errors.Is(err, natsjs.ErrConsumerDeleted):
			signal(deleted)
		case errors.Is(err, nats.ErrNoResponders):
			signal(unanswered)
		}
	})
	opts = append(append(ConsumeOptions(p.Log, p.Name), opts...), onErr)
	var mu sync.Mutex // guards cc
	cc, err := cons.Consume(callback, opts...)
	if err != nil {
		halt()
		return nil, fmt.Errorf("%s: consume: %w", p.Name, err)
	}
	superCtx, endSupervisor := context.WithCancel(context.Background())
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		var checked time.Time
		for {
			select {
			case <-superCtx.Done():
				return
			case <-deleted:
			case <-unanswered:
				if time.Since(checked) < goneCheckInterval {
					continue
				}
				checked = time.Now()
				ictx, cancel := context.WithTimeout(superCtx, goneCheckInterval)
				_, err := cons.Info(ictx)
				cancel()
				if !errors.Is(err, natsjs.ErrConsumerNotFound) {
					continue
				}
			}
			mu.Lock()
			cc.Stop()
			mu.Unlock()
			for failures := 1; superCtx.Err() == nil; failures++ {
				next, err := reopen(superCtx)
				if err == nil {
					var ncc natsjs.ConsumeContext
					if ncc, err = next.Consume(callback, opts...); err == nil {
						mu.Lock()
						cc, cons = ncc, next
						mu.Unlock()
						p.Log.Warn(p.Name + ": consumer was deleted; opened again and pulling")
						break
					}
				}
				p.Log.Warn(p.Name+": consumer was deleted; opening it again", "attempt", failures, "err", err)
				p.Backoff.Wait(superCtx, failures)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			endSupervisor() // first: it starts no Consume after this
			<-supervised
			mu.Lock()
			cc.Stop()
			mu.Unlock()
			halt()
		})
	}, nil
}

// goneCheckInterval bounds how often a pipeline whose pulls go unanswered
// asks whether its consumer still exists.
const goneCheckInterval = time.Second

// process runs the handler on one message, in slot h, and settles it.
func (p *Pipeline) process(ctx context.Context, m natsjs.Msg, h *handling) {
	hctx, cancel := context.WithTimeout(ctx, p.Timeout)
	began := time.Now()
	h.begin(m)
	err := p.call(hctx, m)
	h.end()
	took := time.Since(began)
	cancel()
	switch {
	case err == nil:
		_ = m.Ack()
		p.observe("ok", took)
		return
	case ctx.Err() != nil:
		return // stopping: whoever pulls next gets it after the ack wait
	}
	attrs := p.attrs(m)
	if errors.Is(err, errPanicked) || (p.Retryable != nil && !p.Retryable(err)) {
		p.observe("dead_letter", took)
		p.deadLetter(ctx, m, err, attrs)
		return
	}
	failures := 1
	if md, mdErr := m.Metadata(); mdErr == nil {
		failures = int(md.NumDelivered)
	}
	if failures >= p.MaxAttempts {
		p.observe("dead_letter", took)
		p.deadLetter(ctx, m, fmt.Errorf("failed %d times: %w", failures, err), attrs)
		return
	}
	p.observe("retry", took)
	p.Log.Warn(p.Name+": message not processed; will retry", append(attrs, "attempt", failures, "err", err)...)
	_ = m.NakWithDelay(p.Backoff.Delay(failures))
}

// call runs the handler, turning a panic into an error with its stack.
func (p *Pipeline) call(ctx context.Context, m Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanicked, r, debug.Stack())
		}
	}()
	return p.Handle(ctx, m)
}

func (p *Pipeline) deadLetter(ctx context.Context, m natsjs.Msg, reason error, attrs []any) {
	p.Log.Error(p.Name+": message dead-lettered", append(attrs, "subject", m.Subject(), "reason", reason)...)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.Timeout)
	defer cancel()
	if err := DeadLetter(dctx, p.JS, p.Name, m, reason); err != nil {
		p.Log.Error(p.Name+": dead-letter failed; leaving the message for redelivery", append(attrs, "err", err)...)
		_ = m.NakWithDelay(p.Backoff.Max)
		return
	}
	_ = m.Term()
}

func (p *Pipeline) observe(outcome string, took time.Duration) {
	if p.Observe != nil {
		p.Observe(p.Name, outcome, took)
	}
}

func (p *Pipeline) attrs(m Msg) []any {
	if p.Attrs == nil {
		return nil
	}
	return p.Attrs(m)
}

// How a pipeline pulls. A pull request waits at the server for PullExpiry,
// which sends an idle heartbeat every PullHeartbeat while it has nothing to
// deliver; two missed heartbeats make nats.go pull again from scratch. That
// is also how a Consume recovers when the server no longer holds the pull
// requests the client counts on, which happened under load to the reactor
// (nats.go's defaults, 30 s and 15 s, paused the whole lifecycle for 30 s
// with nothing logged). With these the pause is at most about 2 s, and logged;
// an idle consumer costs a heartbeat a second.
const (
	PullExpiry    = 5 * time.Second
	PullHeartbeat = time.Second
)

// ConsumeOptions are the options every pipeline's Consume starts with.
func ConsumeOptions(log *slog.Logger, name string) []natsjs.PullConsumeOpt {
	return []natsjs.PullConsumeOpt{natsjs.PullExpiry(PullExpiry), natsjs.PullHeartbeat(PullHeartbeat), ConsumeErrors(log, name)}
}

// ConsumeErrors logs what nats.go reports about a Consume (missed
// heartbeats, a consumer deleted or moved, a pull refused), which it would
// otherwise drop: a consumer that stops pulling is then in the log, named.
func ConsumeErrors(log *slog.Logger, name string) natsjs.PullConsumeOpt {
	return natsjs.ConsumeErrHandler(func(_ natsjs.ConsumeContext, err error) {
		log.Warn(name+": consume", "err", err)
	})
}
