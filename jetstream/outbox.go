package jetstream

import (
	"context"
	"fmt"

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
	// notes are sent, unstored, once every stored message is.
	notes []*nats.Msg
}

// NewOutbox returns an empty outbox publishing through js.
func NewOutbox(js natsjs.JetStream) *Outbox { return &Outbox{js: js} }

// Publish queues what Publish sends.
func (o *Outbox) Publish(subject, msgID string, data []byte, hdr nats.Header) {
	o.send(subject, data, hdr, natsjs.WithMsgID(msgID))
}

// Notify queues a message that is not stored: Wait publishes it on the
// plain subject once every stored message of the outbox is acknowledged,
// so a listener hears of an event only after its effects are stored, and
// again if they are repeated. Customer notifications are these: their
// durable record is the order's own event subject.
func (o *Outbox) Notify(subject string, data []byte, hdr nats.Header) {
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range hdr {
		m.Header[k] = v
	}
	o.notes = append(o.notes, m)
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

// Wait returns once every queued message is stored and the notes are
// sent, or with the first failure; the outbox is empty afterwards either
// way. A failed message may be sent again: its Nats-Msg-Id stores it once.
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
	if err == nil {
		for _, m := range o.notes {
			if perr := o.js.Conn().PublishMsg(m); perr != nil {
				err = fmt.Errorf("publish %s: %w", m.Subject, perr)
				break
			}
		}
	}
	clear(o.futures)
	clear(o.notes)
	o.futures, o.notes, o.err = o.futures[:0], o.notes[:0], nil
	return err
}
