package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/metrics"
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
	// Leaderless paces the tries of an append that found no stream to
	// answer it (its leader being elected), for up to leaderlessWait or
	// the request's deadline.
	Leaderless jetstream.Backoff
	// Appended, if set, hears of every append: its stream, its outcome
	// (ok, fenced, error), the order event's type (empty for a SKU's
	// batch) and how long the actor waited.
	Appended func(stream, outcome, eventType string, took time.Duration)
	// Node names this node in the Oms-Node header of what it appends.
	Node string
	// Effects, if set, is handed every order event this node stores, for
	// the reactor to perform its effects; its floor hears of every order
	// append in flight.
	Effects *jetstream.Queue
	// DoubtDelay is how long after an append whose acknowledgement was
	// lost the stream is read to learn whether it was stored: a message
	// still on its way may be stored until then.
	DoubtDelay time.Duration
}

// append is jetstream.Append with the node's name and the correlation ID
// (if any) in the headers, reported to Appended. Once the message is
// stored, stored (if set) hears its sequence before append returns; an
// order event is then handed to Effects, carrying what stored returned.
func (d *Deps) append(ctx context.Context, stream, subject string, data []byte, expectedLast uint64, eventType, correlation string, stored func(seq uint64) any) (*natsjs.PubAck, error) {
	hdr := nats.Header{api.NodeHeader: []string{d.Node}}
	if correlation != "" {
		hdr.Set(api.CorrelationHeader, correlation)
	}
	effects := d.Effects != nil && stream == jetstream.StreamOrders
	var mark uint64
	if effects {
		mark = d.Effects.Sending()
	}
	began := time.Now()
	ack, err := jetstream.Append(ctx, d.JS, subject, data, expectedLast, hdr)
	// No stream answered: no server holds its leadership (an election
	// after a leader's loss lasts seconds), so nothing was stored. Trying
	// again until a leader answers lets a placement wait out the election
	// within its deadline instead of failing at once, as hundreds did in
	// the chaos rounds that kill the leader; the append is fenced, so no
	// try can store it twice.
	for tries := 1; leaderless(err) && ctx.Err() == nil && time.Since(began) < leaderlessWait; tries++ {
		d.Leaderless.Wait(ctx, tries)
		ack, err = jetstream.Append(ctx, d.JS, subject, data, expectedLast, hdr)
	}
	if d.Appended != nil {
		outcome := metrics.OutcomeOK
		switch {
		case errors.Is(err, jetstream.ErrWrongSequence):
			outcome = metrics.OutcomeFenced
		case err != nil:
			outcome = metrics.OutcomeError
		}
		d.Appended(stream, outcome, eventType, time.Since(began))
	}
	var carried any
	if err == nil && stored != nil {
		carried = stored(ack.Sequence)
	}
	if effects {
		switch {
		case err == nil:
			d.Effects.Stored(mark, subject, data, hdr, ack.Sequence, carried)
		case errors.Is(err, jetstream.ErrWrongSequence) || leaderless(err):
			d.Effects.NotStored(mark)
		default:
			d.Effects.Unknown(mark, d.DoubtDelay, d.storedAfter(subject, data, expectedLast))
		}
	}
	return ack, err
}

// storedAfter learns whether an append of data to subject after sequence
// after, whose acknowledgement was lost, was stored, and if so hands it to
// Effects. The append was fenced: if stored, it is the subject's first
// message after that sequence.
func (d *Deps) storedAfter(subject string, data []byte, after uint64) func(context.Context) error {
	return func(ctx context.Context) error {
		m, err := d.Orders.GetMsg(ctx, after+1, natsjs.WithGetMsgSubject(subject))
		switch {
		case errors.Is(err, natsjs.ErrMsgNotFound):
			return nil
		case err != nil:
			return err
		}
		if bytes.Equal(m.Data, data) && m.Header.Get(api.NodeHeader) == d.Node {
			d.Effects.Push(subject, m.Data, m.Header, m.Sequence, nil)
		}
		return nil
	}
}

// leaderlessWait bounds how long an append waits for a stream leader:
// longer than an election (the server's election timeout is at most 9 s),
// for a caller whose context has no deadline of its own.
const leaderlessWait = 10 * time.Second

// leaderless reports an append that no server answered for the stream.
func leaderless(err error) bool {
	return errors.Is(err, natsjs.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

// unverified is the answer for a refusal an actor could not check against
// the stream: retryable (unavailable), naming the refusal and why it could
// not be checked.
func unverified(refusal, check error) error {
	return fmt.Errorf("%w: refusal not verified (%v): %v", api.ErrUnavailable, check, refusal)
}
