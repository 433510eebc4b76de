// Package actors runs oms's actors on protoactor-go's local actor package
// (only that package: its cluster layer has no fencing), behind a small
// interface: a Host activates one actor per key on demand, delivers
// requests to it one at a time, and passivates it when idle. The order and
// SKU actors wrap the domain's deciders and append their events fenced on
// the subject's last sequence; their histories are read with OrderHistory
// and SKUHistory.
//
// It may import the domain, api (for the kinds of its errors), jetstream and
// store.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/oms-project/oms/api"
)

// Handler is the behaviour of one keyed actor. Handle is called with one
// message at a time, never concurrently; Passivate is called before the
// actor is dropped from memory.
type Handler interface {
	Handle(ctx context.Context, msg any) any
	Passivate()
}

// BatchHandler is a Handler that decides several requests at once. The host
// hands it, in arrival order, every request that queued in the mailbox while
// the previous batch was being handled (at most HostOptions.MaxBatch), so one append can
// carry all their decisions: group commit. A hot key then pays one round
// trip to the stream per batch instead of one per request. HandleBatch
// returns one reply per message.
type BatchHandler interface {
	Handler
	HandleBatch(ctx context.Context, msgs []any) []any
}

// Ender is a Handler that can tell when it has nothing left to decide and
// nothing left to answer that the node will still ask for: an order that
// has ended and whose last event's effects read it. The host then
// passivates it after HostOptions.EndedIdle instead of Idle. Ended orders
// are most of the orders in memory during a sale: with the two-minute idle
// timeout a node taking 700 orders a second would keep about 84,000 of
// them (about 3 KB each), whose pointers every collection walks.
type Ender interface {
	Ended() bool
}

// flushBatch tells a batching actor to handle what it has gathered. One is
// queued behind the first request of a batch, so every request already in
// the mailbox joins that batch.
type flushBatch struct{}

// ErrStopped is returned for requests after the host was stopped.
var ErrStopped = fmt.Errorf("actor host stopped: %w", api.ErrUnavailable)

// ErrPanicked is returned to the requests a handler was deciding when it
// panicked. The actor goes on with a fresh handler, which reloads its state
// from the stream, so the panic leaves nothing half-applied behind.
var ErrPanicked = errors.New("actor panicked")

// ErrBusy is returned when an actor already has a full mailbox: the caller
// should back off (the API answers 503) rather than queue without bound.
var ErrBusy = fmt.Errorf("actor mailbox full: %w", api.ErrUnavailable)

// Host owns the actors of one kind (orders, or SKUs).
type Host struct {
	system     *actor.ActorSystem
	dispatcher *dispatcher
	newFn      func(key string) Handler
	idle       time.Duration
	endedIdle  time.Duration
	mailbox    int
	maxBatch   int

	mu       sync.RWMutex
	cells    map[string]*cell
	stopped  bool
	done     chan struct{}
	stopOnce sync.Once

	// endedCells are the cells whose actors have said they ended: the
	// sweep looks at them every EndedIdle/4 without walking every cell,
	// which it does only every Idle/4.
	endedMu    sync.Mutex
	endedCells []*cell

	activations  atomic.Int64
	passivations atomic.Int64
}

type cell struct {
	pid *actor.PID
	// lastUsed is when a message was last sent to the actor (unix nanos).
	lastUsed atomic.Int64
	// pending counts messages sent but not yet received. It is raised under
	// the host's read lock and checked under its write lock, so an actor is
	// only passivated when no message can still be on its way to it.
	pending atomic.Int64
	// ended is set by the actor after a message when its handler, an
	// Ender, has ended: it is then passivated after the shorter idle time.
	// It is cleared when the cell is dropped.
	ended atomic.Bool
}

// idleFor is how long c may receive nothing before it is passivated.
func (h *Host) idleFor(c *cell) time.Duration {
	if c.ended.Load() {
		return h.endedIdle
	}
	return h.idle
}

type envelope struct {
	ctx   context.Context
	msg   any
	reply chan any
}

// passivateCheck asks an actor, through its mailbox, to passivate if it
// is still idle. Going through the mailbox keeps every state change on the
// actor's own goroutine (protoactor's receive-timeout timer does not, and
// races).
type passivateCheck struct{ force bool }

// HostOptions bound a host's actors.
type HostOptions struct {
	// Idle is how long an actor may receive nothing before it is passivated.
	Idle time.Duration
	// EndedIdle replaces Idle for an actor whose handler says it has ended
	// (Ender); 0 means Idle.
	EndedIdle time.Duration
	// Mailbox bounds each actor's queue: a request beyond it fails with
	// ErrBusy. The bound is counted here, not by a bounded protoactor
	// mailbox, which allocates its whole ring buffer up front for every
	// actor.
	Mailbox int
	// MaxBatch bounds the requests a BatchHandler gets at once, and so the
	// size of the message it appends.
	MaxBatch int
}

// NewHost creates a host; newFn builds the handler for a key on activation.
func NewHost(system *actor.ActorSystem, newFn func(key string) Handler, o HostOptions) *Host {
	h := &Host{system: system, dispatcher: newDispatcher(300), newFn: newFn, idle: o.Idle, endedIdle: o.EndedIdle,
		mailbox: o.Mailbox, maxBatch: max(o.MaxBatch, 1), cells: make(map[string]*cell), done: make(chan struct{})}
	if h.endedIdle <= 0 || h.endedIdle > h.idle {
		h.endedIdle = h.idle
	}
	go h.sweep()
	return h
}

// sweep finds idle actors and asks them to passivate: every cell each
// Idle/4, the ended ones each EndedIdle/4.
func (h *Host) sweep() {
	t := time.NewTicker(max(h.endedIdle/4, time.Millisecond))
	defer t.Stop()
	every := max(int(h.idle/h.endedIdle), 1)
	var idle []*actor.PID
	for tick := 0; ; tick++ {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		now := time.Now()
		idle = idle[:0]
		if tick%every == 0 {
			cutoff := now.Add(-h.idle).UnixNano()
			h.mu.RLock()
			for _, c := range h.cells {
				if c.pending.Load() == 0 && c.lastUsed.Load() < cutoff {
					idle = append(idle, c.pid)
				}
			}
			h.mu.RUnlock()
		}
		cutoff := now.Add(-h.endedIdle).UnixNano()
		h.endedMu.Lock()
		kept := h.endedCells[:0]
		for _, c := range h.endedCells {
			if !c.ended.Load() {
				continue // dropped, or asked again and no longer ended
			}
			kept = append(kept, c)
			if c.pending.Load() == 0 && c.lastUsed.Load() < cutoff {
				idle = append(idle, c.pid)
			}
		}
		clear(h.endedCells[len(kept):])
		h.endedCells = kept
		h.endedMu.Unlock()
		for _, pid := range idle {
			h.system.Root.Send(pid, passivateCheck{})
		}
	}
}

// NewSystem creates the protoactor system the hosts share, logging through
// log at warning level and above (its start-up chatter is not ours).
func NewSystem(log *slog.Logger) *actor.ActorSystem {
	quiet := slog.New(levelFilter{h: log.Handler(), min: slog.LevelWarn})
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
}

// levelFilter drops records below min.
type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(g string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(g), min: f.min}
}

// Request delivers msg to the actor for key, activating it if needed, and
// waits for its reply or ctx's end.
func (h *Host) Request(ctx context.Context, key string, msg any) (any, error) {
	c, err := h.acquire(key)
	if err != nil {
		return nil, err
	}
	if c.pending.Load() > int64(h.mailbox) {
		c.pending.Add(-1)
		return nil, fmt.Errorf("%s: %w", key, ErrBusy)
	}
	env := &envelope{ctx: ctx, msg: msg, reply: make(chan any, 1)}
	h.system.Root.Send(c.pid, env)
	select {
	case r := <-env.reply:
		if err, ok := r.(error); ok {
			return nil, err // the request expired in the mailbox, or the handler panicked
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *Host) acquire(key string) (*cell, error) {
	h.mu.RLock()
	if h.stopped {
		h.mu.RUnlock()
		return nil, ErrStopped
	}
	if c, ok := h.cells[key]; ok {
		c.pending.Add(1)
		c.lastUsed.Store(time.Now().UnixNano())
		h.mu.RUnlock()
		return c, nil
	}
	h.mu.RUnlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, ErrStopped
	}
	c, ok := h.cells[key]
	if !ok {
		c = &cell{}
		handler := h.newFn(key)
		props := actor.PropsFromProducer(func() actor.Actor {
			return &keyed{host: h, key: key, cell: c, handler: handler}
		}, actor.WithDispatcher(h.dispatcher))
		c.pid = h.system.Root.Spawn(props)
		h.cells[key] = c
		h.activations.Add(1)
	}
	c.pending.Add(1)
	c.lastUsed.Store(time.Now().UnixNano())
	return c, nil
}

// PassivateAll asks every live actor to passivate now (after what is in
// its mailbox) and waits until none is live or ctx ends. The host stays
// usable: the next request activates afresh.
func (h *Host) PassivateAll(ctx context.Context) error {
	h.mu.RLock()
	pids := make([]*actor.PID, 0, len(h.cells))
	for _, c := range h.cells {
		pids = append(pids, c.pid)
	}
	h.mu.RUnlock()
	for _, pid := range pids {
		h.system.Root.Send(pid, passivateCheck{force: true})
	}
	for h.Active() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// PassivateWhere asks every live actor whose key matches to passivate now,
// without waiting. A node calls it for the keys of partitions it no longer
// owns, so a stale copy is not kept in memory.
func (h *Host) PassivateWhere(match func(key string) bool) int {
	h.mu.RLock()
	var pids []*actor.PID
	for key, c := range h.cells {
		if match(key) {
			pids = append(pids, c.pid)
		}
	}
	h.mu.RUnlock()
	for _, pid := range pids {
		h.system.Root.Send(pid, passivateCheck{force: true})
	}
	return len(pids)
}

// tryPassivate removes the cell if nothing is on its way to it (and, unless
// forced, it is still idle).
func (h *Host) tryPassivate(key string, c *cell, force bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.pending.Load() != 0 || h.cells[key] != c || (!force && c.lastUsed.Load() > time.Now().Add(-h.idleFor(c)).UnixNano()) {
		return false
	}
	delete(h.cells, key)
	c.ended.Store(false)
	h.passivations.Add(1)
	return true
}

// Active returns the number of live actors.
func (h *Host) Active() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.cells)
}

// Stats returns activation and passivation counts since start.
func (h *Host) Stats() (activations, passivations int64) {
	return h.activations.Load(), h.passivations.Load()
}

// Stop passivates every actor after its queued messages and refuses new ones.
func (h *Host) Stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.mu.Lock()
	h.stopped = true
	cells := h.cells
	h.cells = map[string]*cell{}
	h.mu.Unlock()
	for _, c := range cells {
		// Requests that got past acquire before the host stopped may still
		// be on their way to the mailbox (none can start now). Let them
		// arrive before the poison pill, or they would be dropped with the
		// actor and their callers left waiting.
		for deadline := time.Now().Add(10 * time.Second); c.pending.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		_ = h.system.Root.PoisonFuture(c.pid).Wait()
	}
}

type keyed struct {
	host    *Host
	key     string
	cell    *cell
	handler Handler

	// batch holds the requests a BatchHandler has not handled yet; a
	// flushBatch is queued whenever it is not empty.
	batch       []*envelope
	flushQueued bool
}

func (k *keyed) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *envelope:
		k.cell.pending.Add(-1)
		if m.ctx.Err() != nil {
			m.reply <- m.ctx.Err()
			return
		}
		if _, ok := k.handler.(BatchHandler); ok {
			k.batch = append(k.batch, m)
			if !k.flushQueued {
				k.flushQueued = true
				ctx.Send(ctx.Self(), flushBatch{})
			}
			return
		}
		defer k.answerPanic([]*envelope{m})
		m.reply <- k.handler.Handle(m.ctx, m.msg)
		if e, ok := k.handler.(Ender); ok {
			if !e.Ended() {
				k.cell.ended.Store(false)
			} else if !k.cell.ended.Swap(true) {
				k.host.endedMu.Lock()
				k.host.endedCells = append(k.host.endedCells, k.cell)
				k.host.endedMu.Unlock()
			}
		}
	case flushBatch:
		k.flushQueued = false
		k.flush()
		if len(k.batch) > 0 {
			k.flushQueued = true
			ctx.Send(ctx.Self(), flushBatch{})
		}
	case passivateCheck:
		// Gathered requests are no longer counted as pending: an actor
		// holding some is not idle.
		if len(k.batch) == 0 && k.host.tryPassivate(k.key, k.cell, m.force) {
			k.handler.Passivate()
			ctx.Stop(ctx.Self())
		}
	case *actor.Stopping:
		for len(k.batch) > 0 {
			k.flush()
		}
		k.handler.Passivate()
	}
}

// flush hands up to the host's batch bound of gathered requests to the
// handler at once.
func (k *keyed) flush() {
	n := min(len(k.batch), k.host.maxBatch)
	envs := make([]*envelope, 0, n)
	for _, env := range k.batch[:n] {
		if err := env.ctx.Err(); err != nil {
			env.reply <- err
			continue
		}
		envs = append(envs, env)
	}
	clear(k.batch[:n])
	k.batch = k.batch[n:]
	if len(k.batch) == 0 {
		k.batch = nil // let a drained burst's backing array go
	}
	if len(envs) == 0 {
		return
	}
	msgs := make([]any, len(envs))
	for i, env := range envs {
		msgs[i] = env.msg
	}
	defer k.answerPanic(envs)
	ctx, cancel := batchContext(envs)
	replies := k.handler.(BatchHandler).HandleBatch(ctx, msgs)
	cancel()
	for i, env := range envs {
		env.reply <- replies[i]
	}
}

// answerPanic, deferred around a handler call, answers the requests it was
// deciding, and those gathered behind them, with ErrPanicked, and replaces
// the handler with a fresh one, which reloads its state from the stream:
// whatever the panic left half-done in memory is dropped. The actor itself
// goes on, so no request is ever sent to a mailbox protoactor's supervisor
// has stopped.
func (k *keyed) answerPanic(envs []*envelope) {
	r := recover()
	if r == nil {
		return
	}
	err := fmt.Errorf("%s: %w: %v", k.key, ErrPanicked, r)
	k.host.system.Logger().Error("actor handler panicked; state reloads from the stream", "key", k.key, "panic", fmt.Sprint(r))
	for _, env := range append(envs, k.batch...) {
		select {
		case env.reply <- err:
		default: // already answered
		}
	}
	k.batch = nil
	k.handler = k.host.newFn(k.key)
}

// batchContext is the context one batch is handled under: it is not
// cancelled with any one requester (the others still wait for the append),
// and it ends at the latest of their deadlines.
func batchContext(envs []*envelope) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(envs[0].ctx)
	var latest time.Time
	for _, env := range envs {
		d, ok := env.ctx.Deadline()
		if !ok {
			return context.WithCancel(base)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(base, latest)
}
