package jetstream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Outbox sends the messages one event causes without waiting for each in
// turn: they are published asynchronously and Wait collects every
// acknowledgement at once, so a handful of side effects cost one round
// trip instead of one each. It is used by one goroutine.
type Outbox struct {
	js      natsjs.JetStream
	futures []natsjs.PubAckFuture
	err     error
}

// NewOutbox returns an empty outbox publishing through js.
func NewOutbox(js natsjs.JetStream) *Outbox { return &Outbox{js: js} }

// Publish queues what Publish sends.
func (o *Outbox) Publish(subject, msgID string, data []byte, hdr nats.Header) {
	o.send(subject, data, hdr, natsjs.WithMsgID(msgID))
}

// Schedule queues a durable timer: at time at the server copies data to
// TimerFiredPrefix+key. Re-arming the same key replaces the earlier timer.
// Schedules have a resolution of seconds; at is rounded up, so a timer
// never fires before its time.
func (o *Outbox) Schedule(key string, at time.Time, data []byte) {
	at = at.Add(time.Second - 1).Truncate(time.Second)
	o.send(TimerSchedulePrefix+key, data, nil, natsjs.WithScheduleAt(at), natsjs.WithScheduleTarget(TimerFiredPrefix+key))
}

func (o *Outbox) send(subject string, data []byte, hdr nats.Header, opts ...natsjs.PublishOpt) {
	if o.err != nil {
		return
	}
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range hdr {
		m.Header[k] = v
	}
	f, err := o.js.PublishMsgAsync(m, opts...)
	if err != nil {
		o.err = fmt.Errorf("publish %s: %w", subject, err)
		return
	}
	o.futures = append(o.futures, f)
}

// Wait returns once every queued message is stored, or with the first
// failure; the outbox is empty afterwards either way. A failed message may
// be sent again: its Nats-Msg-Id stores it once.
func (o *Outbox) Wait(ctx context.Context) error {
	err := o.err
	for _, f := range o.futures {
		if err != nil {
			break
		}
		select {
		case <-f.Ok():
		case e := <-f.Err():
			err = fmt.Errorf("publish %s: %w", f.Msg().Subject, e)
		case <-ctx.Done():
			err = fmt.Errorf("publish %s: %w", f.Msg().Subject, ctx.Err())
		}
	}
	clear(o.futures)
	o.futures, o.err = o.futures[:0], nil
	return err
}
