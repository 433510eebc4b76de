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
	deadline := time.Now().Add(10 * time.Second)
	// A read model catching up is not swept.
	for sweepsSoFar() < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the sweep does not run")
		}
		time.Sleep(time.Millisecond)
	}
	if n := d.count("a") + d.count("b"); n != 0 {
		t.Fatalf("%d expiries asked while the read model caught up", n)
	}
	caughtUp.Store(true)
	for d.count("a") < 2 || d.count("b") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("asked %v", d.asked)
		}
		time.Sleep(time.Millisecond)
	}
	// Five more sweeps list the same orders: nothing more is asked.
	for then := sweepsSoFar(); sweepsSoFar() < then+5; {
		if time.Now().After(deadline) {
			t.Fatal("the sweep stopped")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	d.mu.Lock()
	defer d.mu.Unlock()
	slices.Sort(d.asked)
	if !slices.Equal(d.asked, []string{"a", "a", "b"}) || len(d.bad) > 0 {
		t.Fatalf("asked %v, malformed %+v", d.asked, d.bad)
	}
}
