package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// ErrWrongSequence is returned by Append when the subject has moved past the
// expected sequence: another writer (or an earlier try of ours) appended.
var ErrWrongSequence = errors.New("wrong last subject sequence")

// Append publishes data to subject only if the subject's last sequence is
// expectedLast (0: the subject is empty). msgID de-duplicates retries.
func Append(ctx context.Context, js natsjs.JetStream, subject, msgID string, data []byte, expectedLast uint64) (*natsjs.PubAck, error) {
	m := nats.NewMsg(subject)
	m.Data = data
	ack, err := js.PublishMsg(ctx, m, natsjs.WithMsgID(msgID), natsjs.WithExpectLastSequencePerSubject(expectedLast))
	if err != nil {
		var apiErr *natsjs.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequenceConstant) {
			return nil, fmt.Errorf("append to %s after %d: %w", subject, expectedLast, ErrWrongSequence)
		}
		return nil, fmt.Errorf("append to %s: %w", subject, err)
	}
	return ack, nil
}

// Publish sends data to a stream-captured subject with a Nats-Msg-Id so a
// retried side effect is stored once.
func Publish(ctx context.Context, js natsjs.JetStream, subject, msgID string, data []byte) error {
	if _, err := js.Publish(ctx, subject, data, natsjs.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}
