// Package workers runs functions on goroutines that are kept for a while
// after a function returns instead of started afresh for each one.
//
// A new goroutine starts with a small stack and grows it again, by
// copying, in the first deep call it makes (a JSON decode, an append to a
// stream): stack copies cost 3% of a loaded node's CPU while the actors'
// mailboxes ran on fresh goroutines, and 2% more for API requests and the
// simulated providers. A kept goroutine has its stack grown already.
package workers

import "time"

// Idle is how long the node's runners keep an idle goroutine: long enough
// to span the gaps of a steady load, short enough that a burst's extra
// goroutines do not stay.
const Idle = 5 * time.Second

// Kept hands each function to a goroutine waiting for one, else to a new
// goroutine. The number of goroutines is never bounded below what the
// functions need (one blocked never holds back another); a goroutine idle
// for the idle time exits, so a burst leaves none behind for long.
type Kept struct {
	work chan func()
	idle time.Duration
}

// New keeps each goroutine for idle after its last function.
func New(idle time.Duration) *Kept {
	return &Kept{work: make(chan func()), idle: idle}
}

// Go runs fn on a waiting goroutine, or on a new one. It never blocks.
func (k *Kept) Go(fn func()) {
	select {
	case k.work <- fn:
	default:
		go k.run(fn)
	}
}

func (k *Kept) run(fn func()) {
	idle := time.NewTimer(k.idle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(k.idle)
		select {
		case fn = <-k.work:
		case <-idle.C:
			return
		}
	}
}
