// Package cluster owns who runs what: the live members (heartbeats in a KV
// bucket, read through a watcher), which member owns each partition
// (rendezvous hashing over the live members), forwarding a call for a key
// to its owner (falling back along the partition's ranking when the owner
// does not answer), and pulling the inbound partitions this node owns, with
// the acknowledgement floors that let a lost consumer be recreated.
//
// A standalone node (embedded NATS, no routes) is a cluster of one: its
// membership is static, and everything else works the same.
//
// Ownership is an optimisation, never a guarantee: two nodes may act for one
// key for a moment, and the fenced appends of the actors keep that correct.
//
// It imports jetstream and config, nothing else of oms.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/jetstream"
)

// Options describe this node's place in the cluster.
type Options struct {
	Self       string
	Roles      []string
	Partitions int
	Replicas   int
	// Standalone makes the membership static: this node alone, no
	// heartbeats.
	Standalone bool
	// Observe watches the members without joining them (a node that owns
	// no partitions: the query role only).
	Observe bool

	Heartbeat     time.Duration
	MemberTimeout time.Duration
	MemberKeyTTL  time.Duration
	FloorInterval time.Duration
	// Inbound limits each inbound partition's consumer; InboundPullBatch is
	// how many messages one pull asks for.
	Inbound          jetstream.ConsumerLimits
	InboundPullBatch int
	// Backoff paces the waits for JetStream while a cluster forms.
	Backoff jetstream.Backoff
	Log     *slog.Logger
}

// OptionsFor returns the options a node with cfg joins with.
func OptionsFor(cfg config.Config, log *slog.Logger) Options {
	t := cfg.Tuning
	command := cfg.Has(config.RoleCommand)
	return Options{Self: cfg.NodeName, Roles: cfg.Roles, Partitions: cfg.Partitions, Replicas: cfg.Replicas,
		Standalone: cfg.Standalone() && command, Observe: !command,
		Heartbeat: t.HeartbeatInterval, MemberTimeout: t.MemberTimeout, MemberKeyTTL: t.MemberKeyTTL,
		FloorInterval:    t.FloorInterval,
		Inbound:          jetstream.ConsumerLimits{AckWait: t.AckWait, MaxAckPending: t.InboundMaxAckPending},
		InboundPullBatch: t.InboundPullBatch, Backoff: jetstream.Backoff{Base: t.RetryBase, Max: 2 * time.Second},
		Log: log}
}

// Cluster is this node's view of the cluster and its part in it.
type Cluster struct {
	o       Options
	nc      *nats.Conn
	js      natsjs.JetStream
	members membership
	inbound *partitions

	mu    sync.Mutex
	hooks []func()

	cancel context.CancelFunc
	wg     sync.WaitGroup
	left   sync.Once
	closed sync.Once
}

// Join enters the cluster: nc carries the calls forwarded between nodes, js
// the membership bucket and the inbound consumers. It returns once the
// members already there are known, so a joining node does not briefly
// take every partition.
func Join(ctx context.Context, nc *nats.Conn, js natsjs.JetStream, o Options) (*Cluster, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	c := &Cluster{o: o, nc: nc, js: js, cancel: cancel}
	c.inbound = &partitions{c: c}
	self := Member{Name: o.Self, Started: time.Now().UTC(), Roles: o.Roles}
	if o.Standalone {
		c.members = staticMembership{self: self}
		return c, nil
	}
	kv, err := c.openBucket(ctx, natsjs.KeyValueConfig{Bucket: membersBucket, Description: "oms nodes' heartbeats",
		TTL: o.MemberKeyTTL, Replicas: o.Replicas, Storage: natsjs.FileStorage})
	if err != nil {
		cancel()
		return nil, err
	}
	m := newKVMembership(kv, self, o, c.reconcile)
	c.members = m
	ready := make(chan struct{})
	c.wg.Add(1)
	go func() { defer c.wg.Done(); m.run(runCtx, ready) }()
	select {
	case <-ready:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// openBucket returns the KV bucket cfg names, creating it if it is missing.
func (c *Cluster) openBucket(ctx context.Context, cfg natsjs.KeyValueConfig) (natsjs.KeyValue, error) {
	return jetstream.OpenBucket(ctx, c.js, c.o.Backoff, cfg, c.waiting("open bucket "+cfg.Bucket))
}

func (c *Cluster) waiting(step string) func(error) {
	return func(err error) { c.o.Log.Info("waiting for JetStream", "step", step, "err", err) }
}

// Self is this node's name.
func (c *Cluster) Self() string { return c.o.Self }

// Owner returns the member that owns key's partition.
func (c *Cluster) Owner(key string) string {
	return rendezvous(c.members.live(), jetstream.PartitionOf(key, c.o.Partitions))
}

// Live reports whether member name is alive, as this node sees it.
func (c *Cluster) Live(name string) bool { return slices.Contains(c.members.live(), name) }

// Owns reports whether this node owns key's partition.
func (c *Cluster) Owns(key string) bool { return c.Owner(key) == c.o.Self }

// OnChange registers fn to run after the partitions this node owns have
// changed (and it has started and stopped pulling accordingly).
func (c *Cluster) OnChange(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, fn)
}

// Calls for an order or a SKU are decided by the actor on the node that
// owns its partition; other nodes forward them on these subjects.
func nodeSubject(node, kind string) string { return "oms.node." + node + "." + kind }

// Forward sends call (JSON-encoded) to the owner of key's partition, as a
// call of kind, and returns its reply. local is true when this node should
// handle the call itself: it owns the partition, or no member before it in
// the partition's ranking answers. Every node computes the same ranking,
// so a dead owner is replaced by one writer while the view catches up.
func (c *Cluster) Forward(ctx context.Context, key, kind string, call any) (reply []byte, local bool, err error) {
	live := c.members.live()
	p := jetstream.PartitionOf(key, c.o.Partitions)
	owner := rendezvous(live, p)
	if owner == c.o.Self {
		return nil, true, nil
	}
	data, err := json.Marshal(call)
	if err != nil {
		return nil, false, fmt.Errorf("encode %s call: %w", kind, err)
	}
	if reply, answered, err := c.request(ctx, owner, kind, data); answered {
		return reply, false, err
	}
	// The ranking is only computed on this failure path.
	for _, node := range ranking(live, p)[1:] {
		if node == c.o.Self {
			return nil, true, nil
		}
		if reply, answered, err := c.request(ctx, node, kind, data); answered {
			return reply, false, err
		}
	}
	return nil, true, nil
}

// request sends one call; answered is false when nobody serves the node's
// subject (it is gone).
func (c *Cluster) request(ctx context.Context, node, kind string, data []byte) ([]byte, bool, error) {
	msg, err := c.nc.RequestWithContext(ctx, nodeSubject(node, kind), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("forward to %s: %w", node, err)
	}
	return msg.Data, true, nil
}

// Serve answers the calls of kind forwarded to this node with handle,
// until the returned stop is called.
func (c *Cluster) Serve(kind string, handle nats.MsgHandler) (stop func(), err error) {
	sub, err := c.nc.Subscribe(nodeSubject(c.o.Self, kind), handle)
	if err != nil {
		return nil, fmt.Errorf("serve %s calls: %w", kind, err)
	}
	// Calls are bounded by the in-flight limit of whoever handles them,
	// not by the subscription's buffer.
	_ = sub.SetPendingLimits(-1, -1)
	return func() { _ = sub.Unsubscribe() }, nil
}

// PullInbound pulls the inbound partitions this node owns through pipe,
// from now on following ownership, until the returned stop is called;
// stop hands over with exact floors.
func (c *Cluster) PullInbound(ctx context.Context, pipe *jetstream.Pipeline) (stop func(), err error) {
	return c.inbound.start(ctx, pipe)
}

// Owned returns the inbound partitions this node pulls.
func (c *Cluster) Owned() []int { return c.inbound.owned() }

// reconcile follows a change of the live members.
func (c *Cluster) reconcile() {
	c.inbound.reconcile()
	c.mu.Lock()
	hooks := slices.Clone(c.hooks)
	c.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// Status is this node's view of the members and what each owns.
type Status struct {
	Self       string
	Partitions int
	Members    []MemberStatus
}

// MemberStatus is one live member and the partitions it owns.
type MemberStatus struct {
	Member
	Owns []int
}

// Status returns the live members, as this node sees them.
func (c *Cluster) Status() Status {
	live := c.members.live()
	owned := map[string][]int{}
	for _, name := range live {
		owned[name] = []int{}
	}
	for p := range c.o.Partitions {
		if o := rendezvous(live, p); o != "" {
			owned[o] = append(owned[o], p)
		}
	}
	st := Status{Self: c.o.Self, Partitions: c.o.Partitions}
	for _, name := range live {
		st.Members = append(st.Members, MemberStatus{Member: c.members.member(name), Owns: owned[name]})
	}
	return st
}

// Leave takes this node out of the others' view: they take its partitions
// at once instead of after its heartbeat times out. It heartbeats no more.
// Stop pulling first.
func (c *Cluster) Leave() {
	c.left.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.members.leave(ctx)
	})
}

// Close leaves the cluster, if this node has not yet, and stops watching it.
func (c *Cluster) Close() {
	c.closed.Do(func() {
		c.Leave()
		c.cancel()
		c.wg.Wait()
	})
}
