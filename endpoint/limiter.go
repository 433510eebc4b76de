package endpoint

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/workers"
)

// ErrBusy answers a request that finds the node's in-flight bound reached.
var ErrBusy = fmt.Errorf("node busy: too many requests in flight: %w", api.ErrUnavailable)

// Limiter runs requests off their subscription's goroutine, so one slow
// order never holds up the others, with at most a bound in flight: beyond
// it a request is refused at once (503) instead of queueing.
type Limiter struct {
	slots   chan struct{}
	timeout time.Duration
	wg      sync.WaitGroup
	// kept runs the requests: a goroutine kept from an earlier request
	// has its stack grown already (decoding and deciding a placement grew
	// a new one's every time).
	kept *workers.Kept
}

// NewLimiter allows max requests in flight, each bounded by timeout.
func NewLimiter(max int, timeout time.Duration) *Limiter {
	return &Limiter{slots: make(chan struct{}, max), timeout: timeout, kept: workers.New(workers.Idle)}
}

// Go runs work on its own goroutine with the request timeout, or calls busy
// at once when the bound is reached.
func (l *Limiter) Go(work func(context.Context), busy func()) {
	select {
	case l.slots <- struct{}{}:
	default:
		busy()
		return
	}
	l.wg.Add(1)
	l.kept.Go(func() {
		defer func() { <-l.slots; l.wg.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		work(ctx)
	})
}

// Acquire takes a slot for a request handled on the caller's goroutine (an
// HTTP request has its own); ok is false when the bound is reached.
func (l *Limiter) Acquire() (release func(), ok bool) {
	select {
	case l.slots <- struct{}{}:
	default:
		return nil, false
	}
	l.wg.Add(1)
	return func() { <-l.slots; l.wg.Done() }, true
}

// Wait returns once no request is in flight.
func (l *Limiter) Wait() { l.wg.Wait() }
