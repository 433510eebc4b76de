// Package node assembles one oms process from its parts: the embedded NATS
// server (or a connection to an external one), the streams, the bbolt file,
// the node's place in the cluster, the write side (actors, the reactor, the
// provider event consumers, the expiry sweep) and the read side (the projection), and the
// API over nats.go/micro. Start is the list of those constructors in order;
// Stop closes them in reverse.
//
// It may import every oms package but cmd.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/cluster"
	"github.com/oms-project/oms/command"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/httpapi"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/metrics"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/query"
	"github.com/oms-project/oms/reactor"
	"github.com/oms-project/oms/store"
)

// Version is the API's version as nats.go/micro reports it.
const Version = "0.2.0"

// errNoCommandRole answers what only a node with the command role can do.
var errNoCommandRole = fmt.Errorf("this node does not run the command role: %w", order.ErrNotFound)

// Node is one running oms process.
type Node struct {
	cfg config.Config
	log *slog.Logger

	server *server.Server // nil when using an external NATS
	// nc carries the pipeline: reactor, projection, consumers, outbox.
	// cmdNC carries the command path (the API, calls forwarded between
	// nodes, the actors' appends and reads): each connection is read by
	// one goroutine at either end, so on a shared one a placement's round
	// trips queued behind the pipeline's bursts (with its own, p99 of
	// place→ack at half the peak rate in oms bench was lower in each of 11
	// paired runs).
	nc, cmdNC *nats.Conn
	js, cmdJS natsjs.JetStream
	orders    natsjs.Stream
	db        *store.DB
	cluster   *cluster.Cluster
	commands  *command.Commands // nil without the command role
	queries   *query.Queries    // nil without the query role
	// limiter bounds the requests in flight: the API's and the calls
	// forwarded from other nodes together.
	limiter *endpoint.Limiter

	creds   *credentials.Set
	jobs    *jobs
	react   *reactor.Reactor // nil without the command role
	effects *effects         // nil without the command role
	ops     []endpoint.Operation
	http    *httpapi.Server // nil with no HTTP listener
	// metrics is the node's Prometheus registry, served at /metrics on
	// the internal listener.
	metrics *metrics.Metrics

	closers []func()
	stop    sync.Once
}

// Start brings a node up and returns once it takes requests.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log.With("node", cfg.NodeName), metrics: metrics.New()}
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"credentials", n.openCredentials},
		{"nats", n.connect},
		{"streams", n.ensureStreams},
		{"store", n.openStore},
		{"cluster", n.joinCluster},
		{"jobs", n.startJobs},
		{"query side", n.startQueries},
		{"in-flight limit", n.startLimiter},
		{"command side", n.startCommands},
		{"metrics", n.registerMetrics},
		{"api", n.serveAPI},
		{"http", n.serveHTTP},
	}
	for _, step := range steps {
		began := time.Now()
		if err := step.run(ctx); err != nil {
			return nil, fmt.Errorf("start %s: %w", step.name, err)
		}
		// Which step a slow start spent its time in (a large stream's
		// recovery, a store's open).
		n.log.Debug("start step done", "step", step.name, "seconds", time.Since(began).Seconds())
	}
	// Ready means the server has our subscriptions: a request sent right
	// after Start returns must find a responder.
	for _, nc := range []*nats.Conn{n.cmdNC, n.nc} {
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			return nil, fmt.Errorf("flush subscriptions: %w", err)
		}
	}
	n.log.Info("oms node ready", "nats", n.ClientURL(), "data_dir", cfg.DataDir, "partitions", cfg.Partitions, "roles", cfg.Roles)
	return n, nil
}

// onStop registers fn to run when the node stops, before everything
// registered earlier.
func (n *Node) onStop(fn func()) { n.closers = append(n.closers, fn) }

// openCredentials reads the credentials directory, creating what is
// missing (on the first start of a node, or of a cluster's first node).
func (n *Node) openCredentials(context.Context) error {
	creds, err := credentials.Ensure(n.cfg.CredentialsDirOf())
	n.creds = creds
	return err
}

// connect starts the embedded NATS server (unless an external one is
// configured) and opens the pipeline's and the command path's connections.
// The embedded server lets in only the users of the credentials, each
// with its permissions; the node connects as its own user.
func (n *Node) connect(context.Context) error {
	cfg, sec := n.cfg, n.cfg.Security
	opts := []nats.Option{nats.Name("oms " + cfg.NodeName), nats.MaxReconnects(-1)}
	url := cfg.NatsURL
	switch {
	case url != "" && sec.NatsCreds != "":
		opts = append(opts, nats.UserCredentials(sec.NatsCreds))
	case url != "" && sec.NatsNkey != "":
		nkey, err := nats.NkeyOptionFromSeed(sec.NatsNkey)
		if err != nil {
			return fmt.Errorf("--nats-nkey: %w", err)
		}
		opts = append(opts, nkey)
	case url == "":
		nkey, err := n.creds.Connect(credentials.UserNode)
		if err != nil {
			return err
		}
		opts = append(opts, nkey)
	}
	if url != "" && sec.NatsCA != "" {
		opts = append(opts, nats.RootCAs(sec.NatsCA))
	}
	if url == "" {
		so := jetstream.ServerOptions{Listen: cfg.NatsListen,
			StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Name: cfg.NodeName,
			ClusterListen: cfg.ClusterListen, Routes: cfg.Routes, ClusterName: cfg.ClusterName, Log: cfg.NatsLog,
			Users: n.creds.ServerUsers(cfg.Partitions)}
		var err error
		if so.RoutePassword, err = n.creds.RoutePassword(); err != nil {
			return err
		}
		if so.TLS, err = serverTLS(sec.NatsTLS, false); err != nil {
			return fmt.Errorf("--nats-tls: %w", err)
		}
		if so.ClusterTLS, err = serverTLS(sec.ClusterTLS, true); err != nil {
			return fmt.Errorf("--cluster-tls: %w", err)
		}
		srv, err := jetstream.StartServer(so)
		if err != nil {
			return err
		}
		n.server = srv
		n.onStop(func() { srv.Shutdown(); srv.WaitForShutdown() })
		url = srv.ClientURL()
		// In-process connection: no loopback TCP on the hot path.
		opts = append(opts, nats.InProcessServer(srv))
		if so.TLS != nil {
			// The node talks to its own server: it trusts exactly the
			// certificate that server presents.
			opts = append(opts, nats.Secure(pinned(so.TLS.Certificates[0])))
		}
	}
	var err error
	if n.nc, n.js, err = dial(url, cfg.RequestTimeout, opts...); err != nil {
		return err
	}
	n.onStop(func() { drain(n.nc) })
	if n.cmdNC, n.cmdJS, err = dial(url, cfg.RequestTimeout, append(opts, nats.Name("oms "+cfg.NodeName+" commands"))...); err != nil {
		return err
	}
	n.onStop(func() { drain(n.cmdNC) })
	return nil
}

// dial connects; a message published asynchronously whose acknowledgement
// does not come within ackTimeout (lost in a leader election) fails then,
// instead of staying pending for ever and counting against the
// connection's bound on pending messages.
func dial(url string, ackTimeout time.Duration, opts ...nats.Option) (*nats.Conn, natsjs.JetStream, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func drain(nc *nats.Conn) {
	_ = nc.Drain()
	nc.Close()
}

// retry is the node's wait for JetStream while a cluster forms.
func (n *Node) retry() jetstream.Backoff {
	return jetstream.Backoff{Base: n.cfg.Tuning.RetryBase, Max: 2 * time.Second}
}

// waitingFor logs a start-up step's wait for JetStream.
func (n *Node) waitingFor(step string) func(error) {
	return func(err error) { n.log.Info("waiting for JetStream", "step", step, "err", err) }
}

// ensureStreams creates or updates the streams. In a cluster, JetStream
// answers only once its meta leader is elected and enough peers are there
// for the replicas: retry until then.
func (n *Node) ensureStreams(ctx context.Context) error {
	// A changed partition count is no reason to wait: it fails at once.
	var refused error
	err := n.retry().Retry(ctx, "create streams", 2*time.Second, func(ctx context.Context) error {
		err := jetstream.Ensure(ctx, n.js, TopologyFor(n.cfg))
		if errors.Is(err, jetstream.ErrPartitionsChanged) {
			refused = err
			return nil
		}
		return err
	}, n.waitingFor("create streams"))
	if refused != nil {
		return refused
	}
	if err != nil {
		return err
	}
	n.orders, err = n.js.Stream(ctx, jetstream.StreamOrders)
	return err
}

// TopologyFor returns the streams a node with cfg runs on.
func TopologyFor(cfg config.Config) jetstream.Topology {
	return jetstream.Topology{Partitions: cfg.Partitions, Replicas: cfg.Replicas,
		DuplicateWindow: cfg.Tuning.DuplicateWindow, TransportMaxAge: cfg.Tuning.TransportMaxAge}
}

func (n *Node) openStore(ctx context.Context) error {
	db, err := store.Open(filepath.Join(n.cfg.DataDir, n.cfg.NodeName+".bolt"))
	if err != nil {
		return err
	}
	n.db = db
	n.onStop(func() { _ = db.Close() })
	if db.Dropped != "" {
		n.log.Warn("node-local store dropped; rebuilding it from the streams", "reason", db.Dropped)
	}
	// The file must be a cache of these streams, not of earlier ones of
	// the same names (a wiped or restored JetStream store).
	last, _, err := db.LastEvent()
	if err != nil {
		return err
	}
	var orders, skus store.Stream
	err = n.retry().Retry(ctx, "read the streams", 2*time.Second, func(ctx context.Context) error {
		var err error
		if orders, err = streamOf(ctx, n.js, jetstream.StreamOrders, last); err != nil {
			return err
		}
		skus, err = streamOf(ctx, n.js, jetstream.StreamSKUs, 0)
		return err
	}, n.waitingFor("read the streams"))
	if err != nil {
		return err
	}
	dropped, err := db.CheckOrigin(orders, skus)
	if dropped != "" {
		n.log.Warn("node-local store dropped; rebuilding it from the streams", "reason", dropped)
	}
	return err
}

// streamOf is what the node finds of stream name on start, with the event
// it holds at sequence at (0: none asked).
func streamOf(ctx context.Context, js natsjs.JetStream, name string, at uint64) (store.Stream, error) {
	// Looking the stream up reads its info: no second request for it.
	s, err := js.Stream(ctx, name)
	if err != nil {
		return store.Stream{}, fmt.Errorf("stream %s: %w", name, err)
	}
	info := s.CachedInfo()
	st := store.Stream{Name: name, Created: info.Created, LastSeq: info.State.LastSeq}
	if at == 0 || at > st.LastSeq {
		return st, nil
	}
	m, err := s.GetMsg(ctx, at)
	switch {
	case errors.Is(err, natsjs.ErrMsgNotFound):
		return st, nil
	case err != nil:
		return store.Stream{}, fmt.Errorf("stream %s, message %d: %w", name, at, err)
	}
	st.Holds = &store.Event{Seq: at, ID: "an unreadable message"}
	if e, err := order.DecodeEvent(m.Data); err == nil {
		st.Holds.ID = e.ID
	}
	return st, nil
}

func (n *Node) joinCluster(ctx context.Context) error {
	cl, err := cluster.Join(ctx, n.cmdNC, n.js, cluster.OptionsFor(n.cfg, n.log))
	if err != nil {
		return err
	}
	n.cluster = cl
	n.onStop(cl.Close)
	return nil
}

// startQueries starts the read side: the projection, from the sequence
// the read model has stored. A node with the command role keeps the read
// model too, without serving queries: its expiry index is what the
// reservations' expiry sweeps.
func (n *Node) startQueries(ctx context.Context) error {
	if !n.cfg.Has(config.RoleQuery) && !n.cfg.Has(config.RoleCommand) {
		return nil
	}
	var orders query.Orders = command.NewRemote(n.cluster)
	if n.cfg.Has(config.RoleCommand) {
		orders = lateOrders{n}
	}
	q, err := query.Start(ctx, query.Deps{DB: n.db, Stream: n.orders, NC: n.nc, JS: n.js, Orders: orders, Stuck: n.cfg.StuckLevels(),
		RequestTimeout: n.cfg.RequestTimeout, CommitInterval: n.cfg.Tuning.ReadModelCommitInterval,
		Retry: n.retry(), Log: n.log, DeadLetter: func(ctx context.Context, m jetstream.Msg, reason error) error {
			return jetstream.DeadLetter(ctx, n.js, "projection", m, reason)
		}})
	if err != nil {
		return err
	}
	n.queries = q
	n.onStop(q.Stop)
	return nil
}

// lateOrders reads orders from the command side, which starts after the
// read side.
type lateOrders struct{ n *Node }

func (l lateOrders) GetOrder(ctx context.Context, id string) (order.Order, error) {
	return l.n.commands.GetOrder(ctx, id, 0)
}

// startLimiter bounds the requests in flight; stopping, it waits for them.
func (n *Node) startLimiter(context.Context) error {
	n.limiter = endpoint.NewLimiter(n.cfg.MaxInFlight, n.cfg.RequestTimeout)
	n.onStop(n.limiter.Wait)
	return nil
}

// startCommands starts the write side: the actors, the answering of
// forwarded calls, the two pipelines (the reactor, the inbound partitions
// this node owns) and the reservations' expiry sweep.
func (n *Node) startCommands(ctx context.Context) error {
	if !n.cfg.Has(config.RoleCommand) {
		return nil
	}
	cfg, t := n.cfg, n.cfg.Tuning
	skus, err := n.cmdJS.Stream(ctx, jetstream.StreamSKUs)
	if err != nil {
		return err
	}
	orders, err := n.cmdJS.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		return err
	}
	floors, err := jetstream.OpenFloors(ctx, n.js, n.retry(), cfg.Replicas,
		n.waitingFor("open floors"))
	if err != nil {
		return err
	}
	// Each order event's effects run here, handed over by the actor that
	// stored it. The reactor is made once the commands it calls exist, and
	// those answer forwarded calls (which append) from the start.
	var react *reactor.Reactor
	made := make(chan struct{})
	fx, last, err := n.openEffects(ctx, floors, func(ctx context.Context, m jetstream.Msg) error {
		select {
		case <-made:
			return react.Handle(ctx, m)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return fmt.Errorf("effects: %w", err)
	}
	n.effects = fx
	snaps := store.NewSnapshotter(n.db, t.SnapshotQueue, t.SnapshotFlushInterval, n.log)
	n.onStop(snaps.Close)
	deps := &actors.Deps{JS: n.cmdJS, Orders: orders, SKUs: skus, DB: n.db, Snapshots: snaps,
		Policy: order.Policy{ReservationTTL: cfg.ReservationTTL, MaxDeliveryAttempts: cfg.MaxDeliveryAttempts},
		Log:    n.log, SnapshotEvery: t.SnapshotEvery, FencedAttempts: t.FencedAttempts,
		Fenced:     jetstream.Backoff{Base: time.Millisecond, Max: 100 * time.Millisecond},
		Leaderless: jetstream.Backoff{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Appended:   n.metrics.Append, Node: cfg.NodeName, Effects: fx.q, DoubtDelay: doubtDelay}
	system := actors.NewSystem(n.log)
	n.onStop(system.Shutdown)
	orderActors := actors.NewHost(system, actors.NewOrderHandler(deps),
		actors.HostOptions{Idle: cfg.IdleTimeout, EndedIdle: cfg.EndedIdleTimeout, Mailbox: t.OrderMailbox})
	skuActors := actors.NewHost(system, actors.NewSKUHandler(deps),
		actors.HostOptions{Idle: cfg.IdleTimeout, Mailbox: t.SKUMailbox, MaxBatch: t.GroupCommitMax})
	n.onStop(func() { orderActors.Stop(); skuActors.Stop() })
	cmds, err := command.New(command.Deps{Cluster: n.cluster, Orders: orderActors, SKUs: skuActors, Limiter: n.limiter,
		DB: n.db, History: command.History{Orders: orders, SKUs: skus}, Log: n.log})
	if err != nil {
		return err
	}
	n.commands = cmds
	n.onStop(cmds.Stop)
	// Stopping in reverse: the pipelines stop first, then the node leaves
	// the cluster (the others take its partitions at once), then it stops
	// answering forwarded calls and lets those in flight finish.
	n.onStop(n.cluster.Leave)

	react = reactor.New(cmds, cmds, func() reactor.Outbox { return jetstream.NewOutbox(n.js) })
	n.react = react
	close(made)
	stopEffects, err := fx.start(ctx, last)
	if err != nil {
		return fmt.Errorf("effects: %w", err)
	}
	n.onStop(stopEffects)
	expiry := command.Expiry{Orders: cmds, Due: n.db.DueForExpiry, Owns: n.cluster.Owns, CaughtUp: n.readModelCaughtUp,
		Interval: t.ExpirySweep, Log: n.log}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() { defer close(swept); expiry.Run(sweepCtx) }()
	n.onStop(func() { stopSweep(); <-swept })
	inbound := command.Inbound{Orders: cmds, Log: n.log}
	stopInbound, err := n.cluster.PullInbound(ctx, n.pipeline("inbound", inbound.Handle, 0, inbound.Key, inbound.Attrs))
	if err != nil {
		return err
	}
	n.onStop(stopInbound)
	return nil
}

// readModelCaughtUp says whether the read model is at most --ready-max-lag
// events behind the order stream, as readiness asks.
func (n *Node) readModelCaughtUp(ctx context.Context) bool {
	rm, err := n.queries.Progress(ctx)
	return err == nil && rm.StreamError == "" && rm.Lag <= n.cfg.HTTP.ReadyMaxLag
}

func reactorAttrs(m jetstream.Msg) []any { return []any{"order_id", reactor.Key(m)} }

// pipeline is the consumer runtime every pipeline of the node runs on.
func (n *Node) pipeline(name string, h jetstream.Handler, workers int, key func(jetstream.Msg) string, about func(jetstream.Msg) []any) *jetstream.Pipeline {
	t := n.cfg.Tuning
	// Every line names what the message is about and, when it carries
	// one, the correlation ID of the request behind it.
	attrs := func(m jetstream.Msg) []any {
		var a []any
		if about != nil {
			a = about(m)
		}
		if c := m.Headers().Get(api.CorrelationHeader); c != "" {
			a = append(a, "correlation_id", c)
		}
		return a
	}
	return &jetstream.Pipeline{Name: name, Handle: h, JS: n.js, Log: n.log, Timeout: n.cfg.RequestTimeout,
		MaxAttempts: t.MaxAttempts, Backoff: jetstream.Backoff{Base: t.RetryBase, Max: t.RetryMax},
		Retryable: pipelineRetryable, Workers: workers, Key: key, Attrs: attrs, Observe: n.metrics.Handled,
		AckWait: t.AckWait}
}

// pipelineRetryable classifies a pipeline's failures as the API does
// (api.Retryable), but for an order not found, which is tried again. Each
// message a pipeline carries is about an order that is in the stream (its
// own event, a provider it asked) or is about to be (a
// provider event overtaking the placement), so not found there is a read
// that has not caught up: a node frozen past its member timeout wakes up
// reading from a replica that lags, until it hears of the new leader. The
// bounded attempts still dead-letter an event for an order that never was.
func pipelineRetryable(err error) bool {
	return errors.Is(err, order.ErrNotFound) || api.Retryable(err)
}

// serveAPI serves every operation this node's roles have over micro.
func (n *Node) serveAPI(context.Context) error {
	n.ops = n.operations()
	if n.commands != nil {
		n.ops = append(n.ops, n.commands.Operations()...)
	}
	if n.cfg.Has(config.RoleQuery) {
		n.ops = append(n.ops, n.queries.Operations()...)
	}
	endpoint.Observe(n.ops, n.metrics.Call)
	m, err := endpoint.ServeMicro(n.cmdNC, Version, n.ops, n.limiter, n.log)
	if err != nil {
		return err
	}
	n.onStop(m.Stop)
	return nil
}

// serveHTTP serves the same operations over HTTP, with the live events and
// the webhooks, on the external and internal listeners.
func (n *Node) serveHTTP(context.Context) error {
	h, sec := n.cfg.HTTP, n.cfg.Security
	if h.Listen == "" && h.InternalListen == "" {
		return nil
	}
	secretFile := sec.JWTSecretFile
	if secretFile == "" && sec.JWKSFile == "" {
		secretFile = n.creds.TokenSecretFile()
	}
	keys, err := auth.ReadKeys(sec.JWKSFile, secretFile, sec.JWTAudience, sec.JWTIssuer)
	if err != nil {
		return fmt.Errorf("token keys: %w", err)
	}
	verifier, err := auth.NewVerifier(keys)
	if err != nil {
		return err
	}
	webhooks := sec.WebhookSecrets
	if webhooks == "" {
		webhooks = n.creds.WebhookFile()
	}
	secrets, err := auth.NewWebhookSecrets(webhooks)
	if err != nil {
		return err
	}
	tlsCfg, err := serverTLS(h.TLS, false)
	if err != nil {
		return fmt.Errorf("--http-tls: %w", err)
	}
	limits := httpapi.DefaultLimits()
	limits.MaxBody, limits.Rate, limits.Burst, limits.MaxStreams = h.MaxBody, h.Rate, h.Burst, h.MaxStreams
	srv := httpapi.New(httpapi.Deps{Operations: n.ops, Verifier: verifier, Webhooks: secrets,
		WebhookTolerance: sec.WebhookTolerance, Inbound: inbound{n.js}, Events: events{n.orders}, Owner: n.owner,
		Limiter: n.limiter, Limits: limits, Version: Version, Log: n.log, Handlers: n.plainHandlers()})
	if err := srv.Listen(h.Listen, h.InternalListen, tlsCfg); err != nil {
		return err
	}
	n.http = srv
	n.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return nil
}

// owner says whose order id is: from the read model if this node has one,
// else from the order's actor.
func (n *Node) owner(ctx context.Context, id string) (string, error) {
	if n.queries != nil {
		return n.queries.Owner(ctx, id)
	}
	o, err := n.commands.GetOrder(ctx, id, 0)
	return o.User, err
}

// HTTPAddr is where a listener of the HTTP edge listens ("" when off).
func (n *Node) HTTPAddr(l endpoint.Listener) string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr(l)
}

// Operations are the operations the node serves.
func (n *Node) Operations() []endpoint.Operation { return n.ops }

// Credentials are the node's credentials.
func (n *Node) Credentials() *credentials.Set { return n.creds }

// ClientURL is where NATS clients reach this node.
func (n *Node) ClientURL() string {
	if n.server != nil {
		return n.server.ClientURL()
	}
	return n.cfg.NatsURL
}

// Conn is the node's NATS connection (for the simulators in one process).
func (n *Node) Conn() *nats.Conn { return n.nc }

// ErrNoEmbeddedServer is returned for what only the embedded server knows.
var ErrNoEmbeddedServer = errors.New("the node uses an external NATS server")

// ClientTraffic is the messages each client connection of the embedded
// server has exchanged with it (jetstream.ClientTraffic).
func (n *Node) ClientTraffic() (map[string]jetstream.Traffic, error) {
	if n.server == nil {
		return nil, ErrNoEmbeddedServer
	}
	return jetstream.ClientTraffic(n.server)
}

// Stop shuts the node down gracefully, in the reverse order of Start:
// the API and the consumers stop taking work, the node leaves the cluster,
// in-flight requests finish, actors passivate (writing snapshots), files
// and connections close.
func (n *Node) Stop() {
	n.stop.Do(func() {
		for i := len(n.closers) - 1; i >= 0; i-- {
			n.closers[i]()
		}
	})
}

// Kill abandons the node without any graceful step, as a crash would:
// nothing is flushed, no actor passivates. Tests use it to prove recovery.
func (n *Node) Kill() {
	n.stop.Do(func() {
		if n.http != nil {
			n.http.Close()
		}
		for _, nc := range []*nats.Conn{n.cmdNC, n.nc} {
			if nc != nil {
				nc.Close()
			}
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

// Order sends cmd to the order's actor, on the node owning its partition.
func (n *Node) Order(ctx context.Context, cmd order.Command) (order.Order, error) {
	if n.commands == nil {
		return order.Order{}, errNoCommandRole
	}
	return n.commands.Order(ctx, cmd)
}

// OrderLocal decides cmd with this node's actor for the order, whoever
// owns it (tests force two owners with it).
func (n *Node) OrderLocal(ctx context.Context, cmd order.Command) (order.Order, error) {
	if n.commands == nil {
		return order.Order{}, errNoCommandRole
	}
	return n.commands.OrderLocal(ctx, cmd)
}

// PassivateAll drops every order and SKU actor from memory (their
// snapshots are queued first).
func (n *Node) PassivateAll(ctx context.Context) error {
	if n.commands == nil {
		return nil
	}
	return n.commands.PassivateAll(ctx)
}

// OwnedPartitions returns the inbound partitions this node pulls.
func (n *Node) OwnedPartitions() []int { return n.cluster.Owned() }
