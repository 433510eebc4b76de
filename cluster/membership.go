package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
)

// membersBucket holds one key per node: its heartbeat.
const membersBucket = "OMS_MEMBERS"

// Member is what a node announces in its heartbeat.
type Member struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Roles   []string  `json:"roles"`
}

// membership says who is alive.
type membership interface {
	// live returns the live members, sorted.
	live() []string
	// member returns what a live member announced.
	member(name string) Member
	// leave removes this node from the others' view at once.
	leave(ctx context.Context)
}

// staticMembership is a cluster of one.
type staticMembership struct{ self Member }

func (s staticMembership) live() []string        { return []string{s.self.Name} }
func (s staticMembership) member(string) Member  { return s.self }
func (s staticMembership) leave(context.Context) {}

// kvMembership tracks the live members through a KV watcher (never by
// polling keys). A member whose last heartbeat is older than the member
// timeout is gone. An observer watches without heartbeating and is not a
// member itself.
type kvMembership struct {
	kv       natsjs.KeyValue
	self     Member
	observer bool
	beat     time.Duration
	timeout  time.Duration
	log      *slog.Logger
	onChange func()
	// backoff paces the tries to open the watcher.
	backoff jetstream.Backoff

	// beating is held while a heartbeat is written, so that leave cannot
	// delete the key between a heartbeat's check and its write.
	beating sync.Mutex
	left    bool // no heartbeat after leave

	mu       sync.RWMutex
	lastBeat time.Time // when this node's own heartbeat was last stored
	lastSeen map[string]time.Time
	info     map[string]Member
	members  []string // sorted
}

func newKVMembership(kv natsjs.KeyValue, self Member, o Options, onChange func()) *kvMembership {
	m := &kvMembership{kv: kv, self: self, observer: o.Observe, beat: o.Heartbeat, timeout: o.MemberTimeout,
		log: o.Log, onChange: onChange, backoff: o.Backoff, lastSeen: map[string]time.Time{}, info: map[string]Member{}}
	if !m.observer {
		m.lastSeen[self.Name], m.info[self.Name], m.members = time.Now(), self, []string{self.Name}
	}
	return m
}

// run heartbeats and watches until ctx ends; ready is closed once the
// initial view (every member already in the bucket) is known. A watcher
// that cannot be opened yet (a node restarted while the bucket elects a
// leader) is tried again until it opens or ctx ends: given up, the node
// would never heartbeat and never own a partition, while it served.
func (m *kvMembership) run(ctx context.Context, ready chan<- struct{}) {
	var w natsjs.KeyWatcher
	for failures := 1; ; failures++ {
		var err error
		if w, err = m.kv.WatchAll(ctx); err == nil {
			break
		}
		m.log.Warn("membership watch not opened; trying again", "attempt", failures, "err", err)
		m.backoff.Wait(ctx, failures)
		if ctx.Err() != nil {
			return
		}
	}
	defer func() { _ = w.Stop() }()
	m.heartbeat(ctx)
	t := time.NewTicker(m.beat)
	defer t.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial values
				if initial {
					initial = false
					m.evaluate()
					close(ready)
				}
				continue
			}
			m.mu.Lock()
			switch e.Operation() {
			case natsjs.KeyValuePut:
				var mem Member
				if json.Unmarshal(e.Value(), &mem) == nil {
					m.info[e.Key()] = mem
					m.lastSeen[e.Key()] = e.Created()
				}
			default: // deleted or purged: the node left
				delete(m.lastSeen, e.Key())
				delete(m.info, e.Key())
			}
			m.mu.Unlock()
			if !initial {
				m.evaluate()
			}
		case <-t.C:
			m.heartbeat(ctx)
			m.evaluate()
		}
	}
}

func (m *kvMembership) heartbeat(ctx context.Context) {
	m.beating.Lock()
	defer m.beating.Unlock()
	if m.observer || m.left {
		return
	}
	data, _ := json.Marshal(m.self)
	// Bounded: during the bucket's leader election a put may hang, and the
	// watcher loop must go on.
	bctx, cancel := context.WithTimeout(ctx, m.beat)
	defer cancel()
	if _, err := m.kv.Put(bctx, m.self.Name, data); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("heartbeat", "err", err)
		}
		return
	}
	m.mu.Lock()
	m.lastBeat = time.Now()
	m.mu.Unlock()
}

func (m *kvMembership) leave(ctx context.Context) {
	m.beating.Lock()
	defer m.beating.Unlock()
	m.left = true
	if m.observer {
		return
	}
	if err := m.kv.Delete(ctx, m.self.Name); err != nil && !errors.Is(err, natsjs.ErrKeyNotFound) {
		m.log.Warn("leave", "err", err)
	}
}

// evaluate recomputes the live set and calls onChange if it changed. While
// this node cannot store its own heartbeat, the bucket is unavailable (a
// leader election, a partition of the network): silence from the others
// then says nothing about them, so no one is declared dead.
func (m *kvMembership) evaluate() {
	now := time.Now()
	m.mu.Lock()
	if !m.observer {
		if now.Sub(m.lastBeat) > m.timeout-m.beat {
			for name := range m.lastSeen {
				if name != m.self.Name && slices.Contains(m.members, name) {
					m.lastSeen[name] = now.Add(-m.beat)
				}
			}
		}
		m.lastSeen[m.self.Name] = now // this node is alive by definition
		m.info[m.self.Name] = m.self
	}
	var live []string
	for name, seen := range m.lastSeen {
		if now.Sub(seen) < m.timeout {
			live = append(live, name)
		}
	}
	slices.Sort(live)
	changed := !slices.Equal(live, m.members)
	if changed {
		m.log.Info("members changed", "members", live)
		m.members = live
	}
	m.mu.Unlock()
	if changed {
		m.onChange()
	}
}

func (m *kvMembership) live() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.members)
}

func (m *kvMembership) member(name string) Member {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.info[name]
}
