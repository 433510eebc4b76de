package command_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/command"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/order"
)

// expirer is a Decider safe for the sweep's workers: it records the
// orders it was asked to expire and fails the first tries of some.
type expirer struct {
	mu    sync.Mutex
	asked []string
	fail  map[string]int
	bad   []order.Command
}

func (e *expirer) Order(_ context.Context, cmd order.Command) (order.Order, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := cmd.(order.ExpireReservation)
	if !ok || c.ID != "expire:"+c.OrderID || c.By != "system" || c.At.IsZero() {
		e.bad = append(e.bad, cmd)
	}
	e.asked = append(e.asked, c.OrderID)
	if e.fail[c.OrderID] > 0 {
		e.fail[c.OrderID]--
		return order.Order{}, fmt.Errorf("actor busy: %w", api.ErrUnavailable)
	}
	return order.Order{}, nil
}

func (e *expirer) count(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, a := range e.asked {
		if a == id {
			n++
		}
	}
	return n
}

// TestExpirySweep: nothing is expired while the read model catches up;
// then every due order this node owns is expired once, though the read
// model lists it again in the next sweeps; one whose expiry failed is
// tried again; one another node owns is left to it.
func TestExpirySweep(t *testing.T) {
	d := &expirer{fail: map[string]int{"a": 1}}
	var caughtUp atomic.Bool
	var mu sync.Mutex
	sweeps := 0
	e := command.Expiry{Orders: d, Interval: 5 * time.Millisecond, Log: quiet,
		Owns:     func(id string) bool { return id != "c" },
		CaughtUp: func(context.Context) bool { return caughtUp.Load() },
		Due: func(now time.Time, limit int) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(now) > time.Minute || limit <= 0 {
				t.Errorf("due asked at %s for %d", now, limit)
			}
			sweeps++
			return []string{"a", "b", "c"}, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sweepsSoFar := func() int { mu.Lock(); defer mu.Unlock(); return sweeps }
	// A read model catching up is not swept.
	poll.Until(t, 10*time.Second, "five sweeps", func() (bool, string) {
		n := sweepsSoFar()
		return n >= 5, fmt.Sprintf("%d sweeps", n)
	})
	if n := d.count("a") + d.count("b"); n != 0 {
		t.Fatalf("%d expiries asked while the read model caught up", n)
	}
	caughtUp.Store(true)
	poll.Until(t, 10*time.Second, "a asked twice, b once", func() (bool, string) {
		a, b := d.count("a"), d.count("b")
		return a >= 2 && b >= 1, fmt.Sprintf("a %d, b %d", a, b)
	})
	// Five more sweeps list the same orders: nothing more is asked.
	then := sweepsSoFar()
	poll.Until(t, 10*time.Second, "five more sweeps", func() (bool, string) {
		n := sweepsSoFar()
		return n >= then+5, fmt.Sprintf("%d sweeps", n)
	})
	cancel()
	<-done
	d.mu.Lock()
	defer d.mu.Unlock()
	slices.Sort(d.asked)
	if !slices.Equal(d.asked, []string{"a", "a", "b"}) || len(d.bad) > 0 {
		t.Fatalf("asked %v, malformed %+v", d.asked, d.bad)
	}
}
