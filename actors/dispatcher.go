package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/oms-project/oms/internal/workers"
)

// dispatcher runs actors' mailboxes on kept goroutines (workers.Kept)
// instead of a new goroutine for each run, as protoactor's default
// dispatcher does: a new one grew its stack again in the first decide and
// append, 3% of a loaded node's CPU in stack copies. An actor blocked on
// an append never holds back another.
type dispatcher struct {
	kept       *workers.Kept
	throughput int
}

var _ actor.Dispatcher = (*dispatcher)(nil)

func newDispatcher(throughput int) *dispatcher {
	return &dispatcher{kept: workers.New(workers.Idle), throughput: throughput}
}

// Schedule runs fn on a waiting goroutine, or on a new one.
func (d *dispatcher) Schedule(fn func()) { d.kept.Go(fn) }

// Throughput is how many messages a mailbox run handles before yielding.
func (d *dispatcher) Throughput() int { return d.throughput }
