package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// ReplayOptions select what Replay reads. FromSeq and Since are
// alternatives (FromSeq wins); Until bounds by message time.
type ReplayOptions struct {
	Stream  string
	Subject string // filter; empty: the whole stream
	FromSeq uint64
	// ToSeq, if set, stops at that sequence instead of the last message
	// stored when Replay began.
	ToSeq uint64
	Since time.Time
	Until time.Time
}

// Replay calls fn for each stored message matching o, in stream order, up to
// the last message stored when it began (or Until). It reads through an
// ordered consumer, so no message is skipped or repeated.
func Replay(ctx context.Context, js natsjs.JetStream, o ReplayOptions, fn func(natsjs.Msg, *natsjs.MsgMetadata) error) (int, error) {
	stream, err := js.Stream(ctx, o.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", o.Stream, err)
	}
	cfg := natsjs.OrderedConsumerConfig{}
	if o.Subject != "" {
		cfg.FilterSubjects = []string{o.Subject}
	}
	switch {
	case o.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, o.FromSeq
	case !o.Since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = natsjs.DeliverByStartTimePolicy, &o.Since
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	if o.ToSeq > 0 {
		last = min(last, o.ToSeq)
	}
	if last == 0 || last < o.FromSeq {
		return 0, nil
	}
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		batch, err := oc.Fetch(256, natsjs.FetchMaxWait(time.Second))
		if err != nil {
			if errors.Is(err, natsjs.ErrNoMessages) {
				// Nothing matched since: nothing more up to last.
				if cinfo := oc.CachedInfo(); cinfo != nil && cinfo.NumPending == 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return n, err
			}
			if md.Sequence.Stream > last || (!o.Until.IsZero() && md.Timestamp.After(o.Until)) {
				return n, nil
			}
			if err := fn(m, md); err != nil {
				return n, err
			}
			n++
			if md.Sequence.Stream == last || md.NumPending == 0 {
				return n, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsjs.ErrNoMessages) {
			return n, err
		}
		if got == 0 {
			if cinfo := oc.CachedInfo(); cinfo != nil && cinfo.NumPending == 0 {
				return n, nil
			}
		}
	}
}

// Watch calls fn with every event appended to subject after sequence
// after, as it is appended, until ctx ends or fn returns an error (or
// ErrStop). Resuming with the last sequence fn saw continues with
// no gap and no duplicate.
func Watch(ctx context.Context, s natsjs.Stream, subject string, after uint64, fn func(natsjs.Msg, uint64) error) error {
	oc, err := s.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{FilterSubjects: []string{subject},
		DeliverPolicy: natsjs.DeliverByStartSequencePolicy, OptStartSeq: after + 1})
	if err != nil {
		return err
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := oc.Next(natsjs.FetchContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Nothing appended within the wait: wait again. (The client
			// reports an idle wait as no messages, a deadline, or a timeout.)
			if errors.Is(err, natsjs.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				continue
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if err := fn(m, md.Sequence.Stream); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
}
