package jetstream

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Queue runs a pipeline's handler on messages handed over in process
// instead of delivered by a consumer: each order event is handed over by
// the actor that appended it, so its effects cost no delivery and no
// acknowledgement (five of each per completed order through the reactor's
// consumer). Everything else of the pipeline is the same:
// the timeout, the panic recovery, the retries with backoff, the dead
// letters, one key's messages on one worker in order.
//
// What a crash cuts short the queue cannot hand over again, so it keeps
// a settled floor: a stream sequence at or below which every message this
// node appended has been handled. The node records it (every
// --floor-interval) and, on start, hands over again the events after it
// that name it; a node that takes over a dead node's floor does the same
// for that node's events. Handing over again is safe: every effect is
// idempotent (message IDs derived from the event, holds keyed by order).
//
// Handing over never blocks: a handler calls back into the actor that
// hands over (the reactor records the stock it held at the order's own
// actor). Yet what it holds is bounded (maxHeld, the node's
// --effects-max-held): past it, an event handed over is kept as its
// sequence only, and read back from the stream once there is room again,
// as a consumer would deliver it. Providers
// that stop answering for an hour then cost the node disk, not memory.
type Queue struct {
	p      *Pipeline
	stream string
	ctx    context.Context
	cancel context.CancelFunc
	lanes  []*lane
	slots  []handling
	wg     sync.WaitGroup

	mu sync.Mutex
	// high is the highest sequence this node's appends were stored at (or
	// where the stream ended when it began): an append sent now is stored
	// above it, since the stream numbers messages in the order it stores
	// them.
	high uint64
	// sending counts the appends in flight by the high they were sent at:
	// one of them may be stored at any sequence above it, and acknowledged
	// after appends sent later (acknowledgements come out of order).
	sending map[uint64]int
	// pending counts the messages handed over and not yet settled, by
	// sequence; held is their sum.
	pending map[uint64]int
	held    int
	// maxHeld bounds held: past it, what is handed over is spilled.
	maxHeld int
	// spilled are the events handed over while the queue was full, by
	// sequence only: the refill reads them back from the stream, in
	// order, from refillFrom (every spilled sequence is at or above it).
	// While any is spilled, so is every later event handed over, so that
	// an order's events still run in order.
	spilled    seqSet
	refillFrom uint64
	readCount  uint64 // events read back since the start
	// refill hears that there is room for spilled events, or new ones;
	// room that there is room for a Room waiting (roomWaits of them).
	refill    chan struct{}
	room      chan struct{}
	roomWaits int
	// doubts are appends whose outcome is unknown (the acknowledgement was
	// lost): stored or not, only reading the stream tells.
	doubts  []doubt
	stopped bool
	// drained hears the last pending message settle.
	drained chan struct{}
}

// A doubt holds the floor at mark until resolve, tried from after, says
// what became of the append.
type doubt struct {
	mark    uint64
	after   time.Time
	resolve func(context.Context) error
}

// lane is one worker's queue: unbounded, so Push never waits.
type lane struct {
	mu   sync.Mutex
	msgs []*queued
	wake chan struct{}
	// retrying counts, by key, the messages to be tried again after a
	// delay; waiting holds the key's later messages meanwhile, so that one
	// order's effects run in order across retries too (a stock commit
	// retried after the release of a cancel that followed would find no
	// hold).
	retrying map[string]int
	waiting  map[string][]*queued
}

// Queue starts the pipeline's workers on a queue of messages of stream,
// which has ended at sequence from (for the floor) when it starts. It
// holds up to maxHeld messages (at least 1) and reads the rest back from
// the stream (through the pipeline's JS) as room frees up.
func (p *Pipeline) Queue(stream string, from uint64, maxHeld int) *Queue {
	maxHeld = max(1, maxHeld)
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{p: p, stream: stream, ctx: ctx, cancel: cancel, high: from, maxHeld: maxHeld,
		sending: map[uint64]int{}, pending: map[uint64]int{}, drained: make(chan struct{}, 1),
		refill: make(chan struct{}, 1), room: make(chan struct{})}
	q.lanes = make([]*lane, max(1, p.Workers))
	q.slots = make([]handling, len(q.lanes))
	for i := range q.lanes {
		l := &lane{wake: make(chan struct{}, 1), retrying: map[string]int{}, waiting: map[string][]*queued{}}
		q.lanes[i] = l
		q.wg.Add(1)
		go func() { defer q.wg.Done(); q.work(l, &q.slots[i]) }()
	}
	q.wg.Add(1)
	go func() { defer q.wg.Done(); q.refillSpilled() }()
	return q
}

func (q *Queue) work(l *lane, h *handling) {
	for {
		l.mu.Lock()
		var m *queued
		for len(l.msgs) > 0 && m == nil {
			m = l.msgs[0]
			l.msgs[0] = nil
			l.msgs = l.msgs[1:]
			if !m.retried && l.retrying[m.key] > 0 {
				// An earlier message of its key waits to be tried again.
				l.waiting[m.key] = append(l.waiting[m.key], m)
				m = nil
			}
		}
		l.mu.Unlock()
		if m != nil {
			q.p.process(q.ctx, m, h)
			continue
		}
		select {
		case <-l.wake:
		case <-q.ctx.Done():
			return
		}
	}
}

// Sending registers an append about to be sent and returns its mark, for
// Stored, NotStored or Unknown once its outcome is known.
func (q *Queue) Sending() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sending[q.high]++
	return q.high
}

// Stored hands over the message an append sent at mark stored at seq,
// carrying carried (see Carrier).
func (q *Queue) Stored(mark uint64, subject string, data []byte, hdr nats.Header, seq uint64, carried any) {
	q.mu.Lock() // once on an order's message path
	q.unsend(mark)
	q.high = max(q.high, seq)
	held := q.hold(seq)
	q.mu.Unlock()
	if held {
		m := q.message(subject, data, hdr, seq, nil)
		m.carried = carried
		q.enqueue(m)
	}
}

// hold counts seq as pending, or spills it: once the queue is full, and
// then for as long as anything at or after the refill's position is
// spilled. An event stored below that position (its acknowledgement came
// late) is held: the refill has passed it, and no later event of its
// order can have been stored yet, since an order's next append waits for
// its last one's acknowledgement. q.mu is held.
func (q *Queue) hold(seq uint64) bool {
	if q.spilled.n > 0 && seq >= q.refillFrom {
		q.spilled.add(seq)
		return false
	}
	if q.held >= q.maxHeld && seq >= q.refillFrom {
		if q.spilled.n == 0 {
			q.refillFrom = seq
			q.p.Log.Warn(q.p.Name+": queue full; events handed over are read back from the stream as room frees up",
				"held", q.held, "from_seq", seq)
		}
		q.spilled.add(seq)
		return false
	}
	q.count(seq)
	return true
}

// count holds seq as pending. q.mu is held.
func (q *Queue) count(seq uint64) {
	q.pending[seq]++
	q.held++
}

// NotStored says the append sent at mark stored nothing.
func (q *Queue) NotStored(mark uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.unsend(mark)
}

// Unknown says the outcome of the append sent at mark is unknown. The
// floor stays at mark until resolve, tried after delay (an append still
// on its way may yet be stored) and again every floor interval until it
// returns nil, has found the append and pushed it, or found it was not
// stored.
func (q *Queue) Unknown(mark uint64, delay time.Duration, resolve func(context.Context) error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.doubts = append(q.doubts, doubt{mark: mark, after: time.Now().Add(delay), resolve: resolve})
}

// Resolve tries the doubts that are due; Floors' recording calls it.
func (q *Queue) Resolve(ctx context.Context) {
	q.mu.Lock()
	var due []doubt
	kept := q.doubts[:0]
	for _, d := range q.doubts {
		if time.Now().After(d.after) {
			due = append(due, d)
		} else {
			kept = append(kept, d)
		}
	}
	q.doubts = kept
	q.mu.Unlock()
	for _, d := range due {
		err := d.resolve(ctx)
		q.mu.Lock()
		if err != nil {
			q.p.Log.Warn(q.p.Name+": an append's outcome is still unknown; will look again", "err", err)
			q.doubts = append(q.doubts, d)
		} else {
			q.unsend(d.mark)
		}
		q.mu.Unlock()
	}
}

func (q *Queue) unsend(mark uint64) {
	if q.sending[mark]--; q.sending[mark] <= 0 {
		delete(q.sending, mark)
	}
}

// Push hands over the message stored at seq, read back from the stream
// (after a stop, or an append whose acknowledgement was lost). Past the
// bound it is kept by sequence as a stored one is, unless settled is set:
// that runs once it is handled or dead-lettered, and a caller that needs
// it waits for Room first. After Stop nothing handles it (the floor still
// counts it).
func (q *Queue) Push(subject string, data []byte, hdr nats.Header, seq uint64, settled func()) {
	q.mu.Lock()
	held := true
	if settled == nil {
		held = q.hold(seq)
	} else {
		q.count(seq)
	}
	q.mu.Unlock()
	if held {
		q.enqueue(q.message(subject, data, hdr, seq, settled))
	}
}

// Room waits until the queue holds fewer messages than its bound: a
// caller pushing many messages read back from the stream waits for it
// before each.
func (q *Queue) Room(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.held < q.maxHeld {
			q.mu.Unlock()
			return nil
		}
		q.roomWaits++
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
		case <-q.ctx.Done():
		}
		q.mu.Lock()
		q.roomWaits--
		q.mu.Unlock()
		if err := cmp.Or(ctx.Err(), q.ctx.Err()); err != nil {
			return err
		}
	}
}

func (q *Queue) message(subject string, data []byte, hdr nats.Header, seq uint64, settled func()) *queued {
	return &queued{q: q, subject: subject, data: data, hdr: hdr, settled: settled,
		md: natsjs.MsgMetadata{Stream: q.stream, Sequence: natsjs.SequencePair{Stream: seq}, NumDelivered: 1}}
}

// enqueue puts m at the end of its lane; it may be called with q.mu held
// (a lane's lock is never held while q.mu is taken).
func (q *Queue) enqueue(m *queued) {
	l := q.lane(m)
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.mu.Unlock()
	l.signal()
}

// lane is m's lane, by its key (kept on m: a retry goes to the same one).
func (q *Queue) lane(m *queued) *lane {
	if q.p.Key == nil {
		return q.lanes[0] // one lane, one message at a time: in order anyway
	}
	if !m.keyed {
		m.key, m.keyed = q.p.Key(m), true
	}
	return q.lanes[PartitionOf(m.key, len(q.lanes))]
}

func (l *lane) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// retry counts m, about to be tried again after a delay, as retrying: its
// key's later messages wait for it.
func (q *Queue) retry(m *queued) {
	if q.p.Key == nil || m.retried {
		return
	}
	l := q.lane(m)
	l.mu.Lock()
	m.retried = true
	l.retrying[m.key]++
	l.mu.Unlock()
}

// retried hands the messages that waited for m, retried and now settled,
// back to its lane, first: every message of their key still queued came
// after them.
func (q *Queue) retried(m *queued) {
	l := q.lane(m)
	l.mu.Lock()
	if l.retrying[m.key]--; l.retrying[m.key] <= 0 {
		delete(l.retrying, m.key)
		if w := l.waiting[m.key]; len(w) > 0 {
			delete(l.waiting, m.key)
			l.msgs = append(w, l.msgs...)
		}
	}
	l.mu.Unlock()
	l.signal()
}

func (q *Queue) settle(m *queued) {
	q.mu.Lock()
	if q.pending[m.md.Sequence.Stream]--; q.pending[m.md.Sequence.Stream] <= 0 {
		delete(q.pending, m.md.Sequence.Stream)
	}
	q.held--
	if q.held == 0 {
		select { // a Stop waiting for the drain
		case q.drained <- struct{}{}:
		default:
		}
	}
	if q.spilled.n > 0 && q.held <= q.maxHeld/2 {
		// Read back in batches: each reading opens a consumer.
		select {
		case q.refill <- struct{}{}:
		default:
		}
	}
	if q.roomWaits > 0 && q.held < q.maxHeld {
		close(q.room)
		q.room = make(chan struct{})
	}
	q.mu.Unlock()
	if m.retried {
		q.retried(m)
	}
	if m.settled != nil {
		m.settled()
	}
}

// Advance raises the floor's start to seq: where the stream ended once
// the events after the recorded floor have been pushed again.
func (q *Queue) Advance(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.high = max(q.high, seq)
}

// Floor is the settled floor: every message this node appended at or
// below it has been handled.
func (q *Queue) Floor() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	floor := q.sentFloor()
	for seq := range q.pending {
		floor = min(floor, seq-1)
	}
	return floor
}

// sentFloor is the floor below every append in flight and every event
// spilled: what is stored at or below it has been handed over and is
// held. q.mu is held.
func (q *Queue) sentFloor() uint64 {
	floor := q.high
	for mark := range q.sending {
		floor = min(floor, mark)
	}
	if q.spilled.n > 0 {
		floor = min(floor, q.spilled.min()-1)
	}
	return floor
}

// MaxUnsettled bounds the sequences Settled lists below its floor.
const MaxUnsettled = 1024

// Settled is what the node records: a floor at or below which every
// message this node appended has been handled, except the unsettled ones
// listed (in order). Listing them keeps one event whose effects are
// retried for minutes from holding the floor, so a crash then repeats
// only that event, not every event since. Past MaxUnsettled the floor is
// Floor's and the list is empty.
func (q *Queue) Settled() (floor uint64, unsettled []uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	floor = q.sentFloor()
	for seq := range q.pending {
		if seq <= floor {
			unsettled = append(unsettled, seq)
		}
	}
	slices.Sort(unsettled)
	if len(unsettled) > MaxUnsettled {
		return unsettled[0] - 1, nil
	}
	return floor, unsettled
}

// Len is how many messages are handed over and not yet settled: those
// held and those spilled.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held + q.spilled.n
}

// Spilled is how many of them are kept by sequence only, to be read back
// from the stream; readBack how many have been since the queue started.
func (q *Queue) Spilled() (spilled int, readBack uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spilled.n, q.readCount
}

// refillSpilled reads the spilled events back from the stream whenever
// the queue has room for them, until it stops.
func (q *Queue) refillSpilled() {
	for {
		select {
		case <-q.refill:
		case <-q.ctx.Done():
			return
		}
		for failures := 0; q.ctx.Err() == nil; {
			q.mu.Lock()
			from, to, due := q.refillFrom, q.spilled.max(), q.spilled.n > 0 && q.held < q.maxHeld
			q.mu.Unlock()
			if !due {
				break // settling makes room and tells again
			}
			_, err := Replay(q.ctx, q.p.JS, ReplayOptions{Stream: q.stream, FromSeq: from, ToSeq: to},
				func(m natsjs.Msg, md *natsjs.MsgMetadata) error { return q.readBack(m, md.Sequence.Stream) })
			switch {
			case errors.Is(err, errStopReading):
				failures = 0
			case err != nil:
				failures++
				q.p.Log.Warn(q.p.Name+": spilled events not read back; will try again", "from_seq", from, "err", err)
				q.p.Backoff.Wait(q.ctx, failures)
			default:
				// Read up to to: a spilled event not found was deleted
				// since, and has nothing left to run.
				failures = 0
				q.mu.Lock()
				q.spilled.removeUpTo(to)
				q.refillFrom = max(q.refillFrom, to+1)
				q.mu.Unlock()
			}
		}
	}
}

// errStopReading stops a reading back: the queue is full again, or nothing
// is left spilled.
var errStopReading = errors.New("stop reading back")

// readBack holds the message read back at seq if it was spilled;
// errStopReading says there is no room for more.
func (q *Queue) readBack(m natsjs.Msg, seq uint64) error {
	q.mu.Lock()
	q.refillFrom = max(q.refillFrom, seq+1)
	found := q.spilled.remove(seq)
	if found {
		q.count(seq)
		q.readCount++
		// In its lane before the lock is let go: the order's next event,
		// held once nothing is spilled, must not get there first.
		q.enqueue(q.message(m.Subject(), m.Data(), m.Headers(), seq, nil))
	}
	caughtUp, full := q.spilled.n == 0, q.held >= q.maxHeld
	q.mu.Unlock()
	switch {
	case caughtUp:
		if found {
			q.p.Log.Info(q.p.Name+": every spilled event read back from the stream", "to_seq", seq)
		}
		return errStopReading
	case full:
		return errStopReading
	}
	return nil
}

// Stop waits up to drain for the messages handed over to be settled, then
// stops the workers; what is left stays under the floor, for the next
// start to hand over again.
func (q *Queue) Stop(drain time.Duration) {
	timeout := time.NewTimer(drain)
	defer timeout.Stop()
wait:
	for q.Len() > 0 {
		select {
		case <-q.drained:
		case <-timeout.C:
			break wait
		}
	}
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

// Carrier is a message handed over in process that may carry, besides its
// bytes, what its sender had in hand: the order's actor hands over the
// event as it decided it and the order it left, so that the reactor
// neither decodes the one nor asks the actor for the other. Carried is nil
// for a message read back from the stream.
type Carrier interface {
	Carried() any
}

// queued is a message handed over in process. Settling it (Ack, Term)
// tells the queue; Nak hands it over again after the delay, counting the
// delivery, as the server would redeliver it.
type queued struct {
	q       *Queue
	subject string
	data    []byte
	hdr     nats.Header
	md      natsjs.MsgMetadata
	settled func()
	carried any
	// key is the pipeline's Key of it (once keyed); retried says it is
	// counted as retrying in its lane.
	key     string
	keyed   bool
	retried bool
}

func (m *queued) Carried() any { return m.carried }

func (m *queued) Metadata() (*natsjs.MsgMetadata, error) { md := m.md; return &md, nil }
func (m *queued) Data() []byte                           { return m.data }
func (m *queued) Headers() nats.Header                   { return m.hdr }
func (m *queued) Subject() string                        { return m.subject }
func (m *queued) Reply() string                          { return "" }
func (m *queued) Ack() error                             { m.q.settle(m); return nil }
func (m *queued) DoubleAck(context.Context) error        { return m.Ack() }
func (m *queued) Nak() error                             { return m.NakWithDelay(0) }
func (m *queued) InProgress() error                      { return nil }
func (m *queued) Term() error                            { m.q.settle(m); return nil }
func (m *queued) TermWithReason(string) error            { return m.Term() }

func (m *queued) NakWithDelay(delay time.Duration) error {
	m.q.retry(m)
	time.AfterFunc(delay, func() {
		m.q.mu.Lock()
		stopped := m.q.stopped
		m.q.mu.Unlock()
		if stopped {
			return
		}
		m.md.NumDelivered++
		m.q.enqueue(m)
	})
	return nil
}
