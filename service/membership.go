package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Membership timing: a node writes its heartbeat every beat; a member whose
// last heartbeat is older than deadAfter is taken for gone. Keys expire
// from the bucket after keyTTL, so the bucket does not fill with the dead.
const (
	membersBucket = "OMS_MEMBERS"
	beat          = time.Second
	deadAfter     = 3 * time.Second
	keyTTL        = 30 * time.Second
)

// Member is what a node announces in its heartbeat.
type Member struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Roles   []string  `json:"roles"`
}

// membership tracks the live members through a KV watcher (never by
// polling keys) and decides partition owners by rendezvous hashing, so
// every node computes the same owners from the same view, and a join or a
// loss moves only the partitions that must move.
type membership struct {
	kv    natsjs.KeyValue
	self  Member
	log   *slog.Logger
	onChg func()

	mu       sync.RWMutex
	lastBeat time.Time // when this node's own heartbeat was last stored
	lastSeen map[string]time.Time
	info     map[string]Member
	live     []string // sorted
}

func newMembership(ctx context.Context, js natsjs.JetStream, self Member, replicas int, log *slog.Logger, onChange func()) (*membership, error) {
	kv, err := openBucket(ctx, js, log, natsjs.KeyValueConfig{Bucket: membersBucket,
		Description: "oms nodes' heartbeats", TTL: keyTTL, Replicas: replicas, Storage: natsjs.FileStorage})
	if err != nil {
		return nil, err
	}
	m := &membership{kv: kv, self: self, log: log, onChg: onChange,
		lastSeen: map[string]time.Time{self.Name: time.Now()}, info: map[string]Member{self.Name: self},
		live: []string{self.Name}}
	return m, nil
}

// openBucket returns the KV bucket cfg names, creating it if it is missing.
// In a forming cluster it retries until JetStream answers.
func openBucket(ctx context.Context, js natsjs.JetStream, log *slog.Logger, cfg natsjs.KeyValueConfig) (natsjs.KeyValue, error) {
	var kv natsjs.KeyValue
	err := retry(ctx, log, "open bucket "+cfg.Bucket, func(ctx context.Context) error {
		var err error
		if kv, err = js.KeyValue(ctx, cfg.Bucket); err == nil {
			return nil
		}
		kv, err = js.CreateKeyValue(ctx, cfg)
		return err
	})
	return kv, err
}

// run heartbeats and watches until ctx ends; ready is closed once the
// initial view (every member already in the bucket) is known.
func (m *membership) run(ctx context.Context, ready chan<- struct{}) {
	w, err := m.kv.WatchAll(ctx)
	if err != nil {
		m.log.Error("membership watch", "err", err)
		close(ready)
		return
	}
	defer func() { _ = w.Stop() }()
	if err := m.heartbeat(ctx); err != nil {
		m.log.Warn("heartbeat", "err", err)
	}
	t := time.NewTicker(beat)
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
			if err := m.heartbeat(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("heartbeat", "err", err)
			}
			m.evaluate()
		}
	}
}

func (m *membership) heartbeat(ctx context.Context) error {
	data, _ := json.Marshal(m.self)
	// Bounded: during the bucket's leader election a put may hang, and the
	// watcher loop must go on.
	ctx, cancel := context.WithTimeout(ctx, beat)
	defer cancel()
	if _, err := m.kv.Put(ctx, m.self.Name, data); err != nil {
		return err
	}
	m.mu.Lock()
	m.lastBeat = time.Now()
	m.mu.Unlock()
	return nil
}

// leave removes this node from the view of the others at once.
func (m *membership) leave(ctx context.Context) {
	if err := m.kv.Delete(ctx, m.self.Name); err != nil && !errors.Is(err, natsjs.ErrKeyNotFound) {
		m.log.Warn("leave", "err", err)
	}
}

// evaluate recomputes the live set and calls onChange if it changed. While
// this node cannot store its own heartbeat, the bucket is unavailable (a
// leader election, a partition of the network): silence from the others
// then says nothing about them, so no one is declared dead.
func (m *membership) evaluate() {
	now := time.Now()
	m.mu.Lock()
	if now.Sub(m.lastBeat) > deadAfter-beat {
		for name := range m.lastSeen {
			if name != m.self.Name && contains(m.live, name) {
				m.lastSeen[name] = now.Add(-beat)
			}
		}
	}
	m.lastSeen[m.self.Name] = now // this node is alive by definition
	m.info[m.self.Name] = m.self
	var live []string
	for name, seen := range m.lastSeen {
		if now.Sub(seen) < deadAfter {
			live = append(live, name)
		}
	}
	slices.Sort(live)
	changed := !slices.Equal(live, m.live)
	if changed {
		m.log.Info("members changed", "members", live)
		m.live = live
	}
	m.mu.Unlock()
	if changed && m.onChg != nil {
		m.onChg()
	}
}

// members returns the live members, sorted.
func (m *membership) members() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.live)
}

// ownerOf returns the live member that owns partition p.
func (m *membership) ownerOf(p int) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return rendezvous(m.live, p)
}

// rendezvous picks, for partition p, the member with the highest hash of
// (member, p): highest random weight hashing.
func rendezvous(members []string, p int) string {
	best, bestScore := "", uint64(0)
	for _, name := range members {
		if s := score(name, p); best == "" || s > bestScore {
			best, bestScore = name, s
		}
	}
	return best
}

func score(member string, p int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(member))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(strconv.Itoa(p)))
	// fnv's low bits mix poorly for similar inputs; finish with a splitmix
	// step so partitions spread evenly.
	return mix(h.Sum64())
}

// ranking returns the live members in rendezvous order for partition p:
// the owner first, then who would own p if the owner were gone, and so
// on. Every node computes the same order, so when an owner stops
// answering they all fall back to the same next member.
func (m *membership) ranking(p int) []string {
	m.mu.RLock()
	out := slices.Clone(m.live)
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b string) int {
		sa, sb := score(a, p), score(b, p)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// partitionsOf returns the partitions each live member owns.
func (m *membership) partitionsOf(partitions int) map[string][]int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[string][]int{}
	for _, name := range m.live {
		out[name] = []int{}
	}
	for p := range partitions {
		o := rendezvous(m.live, p)
		out[o] = append(out[o], p)
	}
	return out
}

func (m *membership) String() string { return fmt.Sprint(m.members()) }

// member returns what a live member announced.
func (m *membership) member(name string) Member {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.info[name]
}

func contains(ss []string, s string) bool { return slices.Contains(ss, s) }
