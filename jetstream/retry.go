package jetstream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is the one retry policy of oms: the wait before the next try
// grows exponentially with the tries so far, up to Max, and is drawn at
// random from its upper half, so that many retrying at once (two owners of
// one order, every consumer after a leader election) spread out. Consumers'
// redeliveries, fenced appends and waits for JetStream all use it.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait after the given number of failed tries (1: the
// first failed).
func (b Backoff) Delay(failures int) time.Duration {
	d := b.Base
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Wait sleeps for Delay(failures), or until ctx ends.
func (b Backoff) Wait(ctx context.Context, failures int) {
	t := time.NewTimer(b.Delay(failures))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Retry calls fn until it succeeds or ctx ends, each try bounded by
// perTry, backing off in between; failed, if not nil, hears of every
// failure. Before a JetStream cluster has a meta leader a request may go
// unanswered rather than fail, hence the bound on each try.
func (b Backoff) Retry(ctx context.Context, what string, perTry time.Duration, fn func(context.Context) error, failed func(error)) error {
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(ctx, perTry)
		err := fn(tctx)
		cancel()
		if err == nil {
			return nil
		}
		if failed != nil {
			failed(err)
		}
		b.Wait(ctx, failures)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
	}
}
