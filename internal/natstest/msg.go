package natstest

import (
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Msg is a delivered message as a handler sees it (jetstream.Msg), for
// testing a handler without a server.
type Msg struct {
	Subj      string
	Body      []byte
	Header    nats.Header
	Seq       uint64
	Delivered uint64
	At        time.Time
}

func (m Msg) Subject() string      { return m.Subj }
func (m Msg) Data() []byte         { return m.Body }
func (m Msg) Headers() nats.Header { return m.Header }

// Metadata reports the message's stream sequence, delivery count and time.
func (m Msg) Metadata() (*natsjs.MsgMetadata, error) {
	return &natsjs.MsgMetadata{Sequence: natsjs.SequencePair{Stream: m.Seq}, NumDelivered: max(m.Delivered, 1),
		Timestamp: m.At}, nil
}
