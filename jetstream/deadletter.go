package jetstream

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

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
	HeaderOrigMsgID   = "Oms-Original-Msg-Id"
)

// deadLetterHeaders are the headers DeadLetter adds; OriginalHeaders leaves
// them out.
var deadLetterHeaders = []string{HeaderReason, HeaderOrigSubject, HeaderOrigStream, HeaderOrigSeq, HeaderOrigMsgID}

// serverControl says whether a header is one the server acts on (a message
// ID, an expected sequence, a TTL, a batch): a dead letter carrying its
// original's would be de-duplicated or fenced against the dead-letter
// stream instead of stored.
func serverControl(key string) bool {
	return len(key) >= 5 && strings.EqualFold(key[:5], "Nats-")
}

// OriginalHeaders returns the headers a dead letter kept of its message
// (correlation, trace, node, ...), without what DeadLetter added: what a
// retry sends again.
func OriginalHeaders(letter nats.Header) nats.Header {
	out := nats.Header{}
	for k, v := range letter {
		if !serverControl(k) && !slices.Contains(deadLetterHeaders, k) {
			out[k] = v
		}
	}
	return out
}

// DeadLetter stores a message that could not be processed, with the reason
// and its own headers (those the server acts on left out; the message ID
// kept as Oms-Original-Msg-Id), under oms.deadletter.<source>, so nothing
// is lost and nothing blocks its partition. Its message ID is the source
// and the original's stream and sequence, so a message dead-lettered twice
// by one source is stored once (and each source that could not process it
// says so).
func DeadLetter(ctx context.Context, js natsjs.JetStream, source string, msg Msg, reason error) error {
	m := nats.NewMsg(DeadLetterPrefix + source)
	m.Data = msg.Data()
	for k, v := range msg.Headers() {
		if !serverControl(k) {
			m.Header[k] = v
		}
	}
	if id := msg.Headers().Get(nats.MsgIdHdr); id != "" {
		m.Header.Set(HeaderOrigMsgID, id)
	}
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
