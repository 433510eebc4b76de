package workers

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blockTogether hands k n functions that each wait until all n run (so
// each needs a goroutine of its own), then lets them return, and waits
// until they have.
func blockTogether(t *testing.T, k *Kept, n int) {
	t.Helper()
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	release := make(chan struct{})
	var ran atomic.Int32
	for range n {
		k.Go(func() {
			defer finished.Done()
			ran.Add(1)
			started.Done()
			<-release
		})
	}
	wait(t, &started, func() string { return "a blocked function held back another: ran " + itoa(ran.Load()) })
	close(release)
	wait(t, &finished, func() string { return "released functions did not return" })
}

func wait(t *testing.T, wg *sync.WaitGroup, why func() string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal(why())
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestKeptGoroutinesRunTheNextFunctions: goroutines that finished a
// function wait for the next instead of exiting, and functions given one
// after another run on them rather than on new ones.
func TestKeptGoroutinesRunTheNextFunctions(t *testing.T) {
	before := runtime.NumGoroutine()
	k := New(time.Hour)
	blockTogether(t, k, 100)
	// The helper's own waiting goroutines exit soon after; the kept ones
	// stay.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() != before+100 {
		if n := runtime.NumGoroutine(); n < before+100 || time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the functions returned, %d before: 100 should be kept", n, before)
		}
		time.Sleep(time.Millisecond)
	}
	for range 200 {
		in := make(chan int, 1)
		k.Go(func() { in <- runtime.NumGoroutine() })
		if n := <-in; n > before+100 {
			t.Fatalf("%d goroutines while a function ran, %d kept: it got a new one", n, before+100)
		}
	}
}

// TestIdleGoroutinesExit: a burst leaves no goroutine behind once they
// have been idle for the idle time.
func TestIdleGoroutinesExit(t *testing.T) {
	before := runtime.NumGoroutine()
	blockTogether(t, New(20*time.Millisecond), 50)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after idling, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
