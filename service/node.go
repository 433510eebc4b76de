// Package service assembles an oms node: it connects actors, JetStream and
// bbolt, serves the request-reply API, runs the reactor that turns appended
// events into side effects, and consumes provider events and timers.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// Node is one running oms process.
type Node struct {
	cfg config.Config
	log *slog.Logger

	server *server.Server // nil when using an external NATS
	nc     *nats.Conn     // the pipeline: reactor, projection, consumers, outbox
	js     natsjs.JetStream
	// cmdNC carries the command path (the API, calls forwarded between
	// nodes, the actors' appends and reads). Each connection is read by one
	// goroutine at either end, so on a shared one a placement's round trips
	// queued behind the pipeline's bursts (with its own, p99 of place→ack at
	// half the peak rate in oms bench was lower in each of 11 paired runs).
	cmdNC       *nats.Conn
	cmdJS       natsjs.JetStream
	db          *store.DB
	snaps       *store.Snapshotter
	system      interface{ Shutdown() }
	orders      *actors.Host
	skus        *actors.Host
	svc         micro.Service
	proj        *projector
	orderStream natsjs.Stream
	members     *membership
	subs        []*nats.Subscription

	// Inbound partitions: every partition's consumer, and those pulled.
	inbound       []natsjs.Consumer
	pullMu        sync.Mutex
	pulling       map[int]natsjs.ConsumeContext
	runCtx        context.Context
	forwardMisses atomic.Int64

	stopConsumers []func()
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	inflight      chan struct{}
	stopOnce      sync.Once
}

// Start brings a node up: NATS (embedded unless cfg.NatsURL), streams,
// bbolt, actors, the API, the reactor, and the consumers. It returns once
// the node takes commands.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// n, not the result: a failed start returns nil, and the cleanup below
	// still needs the half-started node.
	n := &Node{cfg: cfg, log: log.With("node", cfg.NodeName), inflight: make(chan struct{}, cfg.MaxInFlight)}
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	opts := []nats.Option{nats.Name("oms " + cfg.NodeName), nats.MaxReconnects(-1)}
	url := cfg.NatsURL
	if url == "" {
		n.server, err = jetstream.StartServer(jetstream.ServerOptions{Listen: cfg.NatsListen,
			StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Name: cfg.NodeName,
			ClusterListen: cfg.ClusterListen, Routes: cfg.Routes, ClusterName: cfg.ClusterName})
		if err != nil {
			return nil, err
		}
		url = n.server.ClientURL()
		// In-process connection: no loopback TCP on the hot path.
		opts = append(opts, nats.InProcessServer(n.server))
	}
	if n.nc, err = nats.Connect(url, opts...); err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	if n.js, err = natsjs.New(n.nc); err != nil {
		return nil, err
	}
	if n.cmdNC, err = nats.Connect(url, append(opts, nats.Name("oms "+cfg.NodeName+" commands"))...); err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	if n.cmdJS, err = natsjs.New(n.cmdNC); err != nil {
		return nil, err
	}
	// In a cluster, JetStream answers only once its meta leader is elected
	// and enough peers are there for the replicas: retry until then.
	if err := retry(ctx, n.log, "create streams", func(ctx context.Context) error { return jetstream.Ensure(ctx, n.js, TopologyFor(cfg)) }); err != nil {
		return nil, err
	}
	ordersStream, err := n.js.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		return nil, err
	}
	n.orderStream = ordersStream
	if n.db, err = store.Open(filepath.Join(cfg.DataDir, cfg.NodeName+".bolt")); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel, n.runCtx = cancel, runCtx
	if cfg.Has(config.RoleCommand) {
		skusStream, err := n.cmdJS.Stream(ctx, jetstream.StreamSKUs)
		if err != nil {
			return nil, err
		}
		cmdOrders, err := n.cmdJS.Stream(ctx, jetstream.StreamOrders)
		if err != nil {
			return nil, err
		}
		n.snaps = store.NewSnapshotter(n.db, 4096, 200*time.Millisecond, n.log)
		deps := &actors.Deps{JS: n.cmdJS, Orders: cmdOrders, SKUs: skusStream, DB: n.db, Snapshots: n.snaps,
			Policy: order.Policy{ReservationTTL: cfg.ReservationTTL, MaxDeliveryAttempts: cfg.MaxDeliveryAttempts},
			Log:    n.log, SnapshotEvery: cfg.SnapshotEvery}
		system := actors.NewSystem(n.log)
		n.system = system
		n.orders = actors.NewHost(system, actors.NewOrderHandler(deps), cfg.IdleTimeout, 1024)
		n.skus = actors.NewHost(system, actors.NewSKUHandler(deps), cfg.IdleTimeout, 4096)
		if err := n.serveCalls(); err != nil {
			return nil, err
		}
		// Membership first: the reactor and the consumers route by it.
		self := Member{Name: cfg.NodeName, Started: time.Now().UTC(), Roles: cfg.Roles}
		if n.members, err = newMembership(ctx, n.js, self, cfg.Replicas, n.log, n.reconcileInbound); err != nil {
			return nil, err
		}
		ready := make(chan struct{})
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.members.run(runCtx, ready) }()
		// Learn who else is here before pulling partitions, so a joining
		// node does not briefly pull them all.
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := n.startReactor(runCtx); err != nil {
			return nil, err
		}
		if err := n.startInbound(runCtx); err != nil {
			return nil, err
		}
		if err := n.startTimers(runCtx); err != nil {
			return nil, err
		}
		n.reconcileInbound()
	}
	if cfg.Has(config.RoleQuery) {
		n.proj = newProjector(n.db, ordersStream, n.log)
		if err := n.proj.start(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.startAPI(); err != nil {
		return nil, err
	}
	// Ready means the server has our subscriptions: a request sent right
	// after Start returns must find a responder.
	for _, nc := range []*nats.Conn{n.cmdNC, n.nc} {
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			return nil, fmt.Errorf("flush subscriptions: %w", err)
		}
	}
	n.log.Info("oms node ready", "nats", url, "data_dir", cfg.DataDir, "partitions", cfg.Partitions, "roles", cfg.Roles)
	return n, nil
}

// TopologyFor returns the streams a node with cfg runs on.
func TopologyFor(cfg config.Config) jetstream.Topology {
	return jetstream.Topology{Partitions: cfg.Partitions, Replicas: cfg.Replicas,
		DuplicateWindow: 2 * time.Minute, TransportMaxAge: 7 * 24 * time.Hour}
}

// ClientURL is where NATS clients reach this node.
func (n *Node) ClientURL() string {
	if n.server != nil {
		return n.server.ClientURL()
	}
	return n.cfg.NatsURL
}

// Conn is the node's NATS connection (for the simulators in one process).
func (n *Node) Conn() *nats.Conn { return n.nc }

// JetStream is the node's JetStream handle.
func (n *Node) JetStream() natsjs.JetStream { return n.js }

// Stop shuts the node down gracefully: consumers stop taking messages,
// in-flight requests finish, actors passivate (writing snapshots), files close.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		if n.svc != nil {
			_ = n.svc.Stop()
		}
		// Hand over: stop pulling, finish what is in flight, then leave
		// so the others take the partitions at once.
		n.stopInbound()
		for _, stop := range n.stopConsumers {
			stop()
		}
		if n.members != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.members.leave(ctx)
			cancel()
		}
		for _, sub := range n.subs {
			_ = sub.Unsubscribe()
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.proj != nil {
			n.proj.stop()
		}
		if n.orders != nil {
			n.orders.Stop()
			n.skus.Stop()
		}
		if n.system != nil {
			n.system.Shutdown()
		}
		if n.snaps != nil {
			n.snaps.Close()
		}
		if n.db != nil {
			_ = n.db.Close()
		}
		for _, nc := range []*nats.Conn{n.cmdNC, n.nc} {
			if nc != nil {
				_ = nc.Drain()
				nc.Close()
			}
		}
		if n.server != nil {
			n.server.Shutdown()
			n.server.WaitForShutdown()
		}
	})
}

// Kill abandons the node without any graceful step, as a crash would:
// nothing is flushed, no actor passivates. Tests use it to prove recovery.
func (n *Node) Kill() {
	n.stopOnce.Do(func() {
		for _, nc := range []*nats.Conn{n.cmdNC, n.nc} {
			if nc != nil {
				nc.Close()
			}
		}
		if n.cancel != nil {
			n.cancel()
		}
		if n.server != nil {
			n.server.Shutdown()
			n.server.WaitForShutdown()
		}
		if n.db != nil {
			_ = n.db.Close()
		}
	})
}

// PassivateAll drops every order and SKU actor from memory (their snapshots
// are queued first). Used to measure memory and before maintenance.
func (n *Node) PassivateAll(ctx context.Context) error {
	if n.orders == nil {
		return nil
	}
	if err := n.orders.PassivateAll(ctx); err != nil {
		return err
	}
	return n.skus.PassivateAll(ctx)
}

// retry calls fn until it succeeds or ctx ends, backing off. Each attempt
// gets its own few seconds: before a JetStream cluster has a meta leader a
// request may go unanswered rather than fail.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		log.Info("waiting for JetStream", "step", what, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

var errNodeBusy = errors.New("node busy: too many requests in flight")
