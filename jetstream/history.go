package jetstream

import (
	"context"
	"errors"
	"fmt"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// ErrStop, returned by the function given to Fold or Watch, ends it
// without an error.
var ErrStop = errors.New("stop")

// Fold calls fn with each message of subject whose sequence is greater than
// after, in stream order, until the subject has no more or fn returns
// ErrStop. It is the one way oms reads a subject's history: actors catching
// up, rebuilds, feeds and tests all fold.
func Fold(ctx context.Context, stream natsjs.Stream, subject string, after uint64, fn func(*natsjs.RawStreamMsg) error) error {
	next := after + 1
	for {
		msg, err := stream.GetMsg(ctx, next, natsjs.WithGetMsgSubject(subject))
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s from %d: %w", subject, next, err)
		}
		if err := fn(msg); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		next = msg.Sequence + 1
	}
}

// LastSeq returns the sequence of subject's last message (0: none).
func LastSeq(ctx context.Context, stream natsjs.Stream, subject string) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", subject, err)
	}
	return m.Sequence, nil
}
