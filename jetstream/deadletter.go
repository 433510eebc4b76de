package jetstream

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Headers of a dead letter: why it could not be processed, and where it
// came from.
const (
	HeaderReason      = "Oms-Dead-Letter-Reason"
	HeaderOrigSubject = "Oms-Original-Subject"
	HeaderOrigStream  = "Oms-Original-Stream"
	HeaderOrigSeq     = "Oms-Original-Sequence"
)

// DeadLetter stores a message that could not be processed, with the reason,
// under oms.deadletter.<source>, so nothing is lost and nothing blocks its
// partition. Its message ID is the source and the original's stream and
// sequence, so a message dead-lettered twice by one source is stored once
// (and each source that could not process it says so).
func DeadLetter(ctx context.Context, js natsjs.JetStream, source string, msg Msg, reason error) error {
	m := nats.NewMsg(DeadLetterPrefix + source)
	m.Data = msg.Data()
	m.Header.Set(HeaderReason, reason.Error())
	m.Header.Set(HeaderOrigSubject, msg.Subject())
	var opts []natsjs.PublishOpt
	if md, err := msg.Metadata(); err == nil {
		m.Header.Set(HeaderOrigStream, md.Stream)
		m.Header.Set(HeaderOrigSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		opts = append(opts, natsjs.WithMsgID(source+":"+md.Stream+":"+strconv.FormatUint(md.Sequence.Stream, 10)))
	}
	if _, err := js.PublishMsg(ctx, m, opts...); err != nil {
		return fmt.Errorf("dead-letter %s: %w", msg.Subject(), err)
	}
	return nil
}
