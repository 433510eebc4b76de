package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// dispatcher runs actors' mailboxes on goroutines that are kept for a
// while after a run instead of started afresh for each one, as
// protoactor's default dispatcher does. A new goroutine starts with a
// small stack and grows it again in the first decide and append, which
// cost 3% of a loaded node's CPU in stack copies; a kept goroutine has its
// stack grown already. A mailbox is handed to an idle goroutine if one is
// waiting, else to a new one: the number of goroutines is never bounded
// below what the actors need (an actor blocked on an append never holds
// back another), and one idle for idleWorker exits.
type dispatcher struct {
	work       chan func()
	throughput int
}

// idleWorker is how long a goroutine waits for another mailbox to run.
const idleWorker = 5 * time.Second

var _ actor.Dispatcher = (*dispatcher)(nil)

func newDispatcher(throughput int) *dispatcher {
	return &dispatcher{work: make(chan func()), throughput: throughput}
}

// Schedule runs fn on a waiting goroutine, or on a new one.
func (d *dispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go d.run(fn)
	}
}

// Throughput is how many messages a mailbox run handles before yielding.
func (d *dispatcher) Throughput() int { return d.throughput }

func (d *dispatcher) run(fn func()) {
	idle := time.NewTimer(idleWorker)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(idleWorker)
		select {
		case fn = <-d.work:
		case <-idle.C:
			return
		}
	}
}
