// Package config holds the one configuration struct of an oms node, its
// defaults for single-node development, and its validation. Every tunable
// of the node is a field here with its default in Default; no other package
// reads flags, files or environment variables.
//
// It imports nothing of oms.
package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config is everything a node needs. Start from Default and change fields.
type Config struct {
	NodeName   string
	DataDir    string
	NatsListen string
	// NatsURL, when set, connects to an existing NATS instead of embedding one.
	NatsURL string
	// ClusterListen (host:port) and Routes make the embedded servers of
	// several nodes one NATS cluster.
	ClusterListen string
	Routes        []string
	ClusterName   string
	Partitions    int
	Replicas      int
	// NatsLog shows the embedded NATS server's own log on stderr.
	NatsLog bool

	ReservationTTL time.Duration
	// Stuck is how long an order may stay in a status before it is
	// stuck (oms stuck, oms_orders_stuck, the dashboard).
	Stuck               StuckAfter
	MaxDeliveryAttempts int
	IdleTimeout         time.Duration
	EndedIdleTimeout    time.Duration // IdleTimeout of an ended order's actor once its last effects read it
	RequestTimeout      time.Duration
	MaxInFlight         int
	StatusInterval      time.Duration

	// Roles says what the node runs: "command" (actors, reactor, provider
	// consumers, commands) and "query" (read model, lookups, lists,
	// analytics, feeds).
	Roles []string

	Simulate  bool
	Simulator Simulator

	Security Security
	HTTP     HTTP

	Tuning Tuning
}

// Security is who may reach the node and with what.
type Security struct {
	// CredentialsDir holds the generated credentials (default
	// <data-dir>/credentials): nodes of one cluster share its contents.
	CredentialsDir string
	// NatsCreds or NatsNkey authenticate the node to an external NATS
	// (--nats-url); NatsCA verifies that server's certificate.
	NatsCreds string
	NatsNkey  string
	NatsCA    string
	// NatsTLS and ClusterTLS are the certificates of the embedded server's
	// client and route listeners (routes also verify their peers with
	// ClusterTLS.CA).
	NatsTLS    TLS
	ClusterTLS TLS
	// JWKSFile or JWTSecretFile are the keys bearer tokens are checked
	// against (default: the generated secret `oms token issue` signs with);
	// JWTIssuer, if set, and JWTAudience must match the token's.
	JWKSFile      string
	JWTSecretFile string
	JWTIssuer     string
	JWTAudience   string
	// WebhookSecrets is the file of providers' webhook secrets (default:
	// the generated one, with the simulated providers' secrets).
	WebhookSecrets   string
	WebhookTolerance time.Duration
}

// TLS names certificate files.
type TLS struct {
	Cert, Key, CA string
}

// On reports whether a certificate is configured.
func (t TLS) On() bool { return t.Cert != "" }

// HTTP is the HTTP edge.
type HTTP struct {
	// Listen serves customers and webhooks; InternalListen support, admin
	// and operations. Empty: off.
	Listen         string
	InternalListen string
	TLS            TLS
	MaxBody        int64
	Rate           float64
	Burst          int
	MaxStreams     int
	// ReadyMaxLag is the read-model lag (order events) beyond which
	// /readyz answers 503: a node that far behind serves stale lists.
	ReadyMaxLag uint64
}

// StuckAfter are the service levels per status. An unpaid order should
// have been paid or expired by the end of its reservation (Received 0:
// the reservation TTL plus a minute for the expiry sweep).
type StuckAfter struct {
	Received  time.Duration
	Paid      time.Duration
	InTransit time.Duration
}

// StuckLevels returns the service level of each status an order can be
// stuck in.
func (c Config) StuckLevels() map[string]time.Duration {
	received := c.Stuck.Received
	if received == 0 {
		received = c.ReservationTTL + time.Minute
	}
	return map[string]time.Duration{"order_received": received, "order_paid": c.Stuck.Paid, "order_inTransit": c.Stuck.InTransit}
}

// CredentialsDirOf is where the node's credentials are.
func (c Config) CredentialsDirOf() string {
	if c.Security.CredentialsDir != "" {
		return c.Security.CredentialsDir
	}
	return filepath.Join(c.DataDir, "credentials")
}

// Tuning holds the knobs a deployment rarely changes. Each default is the
// value the project's measurements were taken with.
type Tuning struct {
	// AckWait is how long a pulled message may stay unacknowledged before
	// the server hands it out again: also how long the messages a crashed
	// node had pulled wait before another node gets them.
	AckWait time.Duration
	// MaxAttempts is how often a message is tried before it goes to the
	// dead-letter stream, for every consumer.
	MaxAttempts int
	// RetryBase and RetryMax bound the backoff between attempts
	// (exponential, with full jitter).
	RetryBase time.Duration
	RetryMax  time.Duration

	// ReactorWorkers handle order events in parallel (one order's events
	// always go to the same worker, in order).
	ReactorWorkers int
	// EffectsMaxHeld bounds the order events whose effects wait in memory;
	// past it they are kept by sequence and read back from the stream.
	EffectsMaxHeld       int
	InboundMaxAckPending int
	InboundPullBatch     int
	// ExpirySweep is how often the reservations due to expire are
	// looked up (the read model's expiry index) and expired.
	ExpirySweep time.Duration

	// HeartbeatInterval is how often a node writes its heartbeat;
	// MemberTimeout how old the last one may be before a member is gone;
	// MemberKeyTTL how long the bucket keeps the key of a silent member.
	HeartbeatInterval time.Duration
	MemberTimeout     time.Duration
	MemberKeyTTL      time.Duration
	// FloorInterval is how often a partition's owner records its inbound
	// acknowledgement floor: a consumer recreated from it repeats at most
	// this much.
	FloorInterval time.Duration

	// OrderMailbox and SKUMailbox bound each actor's queue.
	OrderMailbox int
	SKUMailbox   int
	// GroupCommitMax bounds how many queued requests a SKU decides and
	// appends as one message.
	GroupCommitMax int
	// FencedAttempts bounds how often an actor catches up and decides again
	// when another writer moved its subject.
	FencedAttempts int
	// SnapshotEvery queues an actor snapshot after this many events;
	// SnapshotQueue bounds the snapshots waiting to be written, and
	// SnapshotFlushInterval how long they may wait.
	SnapshotEvery         int
	SnapshotQueue         int
	SnapshotFlushInterval time.Duration
	// ReadModelCommitInterval spaces the read model's transactions under
	// load (a quiet stream is projected at once).
	ReadModelCommitInterval time.Duration

	// DuplicateWindow is how long the streams whose messages carry a
	// Nats-Msg-Id remember one (jetstream.Topology).
	DuplicateWindow time.Duration
	// TransportMaxAge is how long the inbound and outbox streams keep
	// messages (order and SKU events are kept forever).
	TransportMaxAge time.Duration
}

// Role names.
const (
	RoleCommand = "command"
	RoleQuery   = "query"
)

// Has reports whether the node runs role r.
func (c Config) Has(r string) bool { return slices.Contains(c.Roles, r) }

// Standalone reports whether the node is a cluster of one: it embeds its
// NATS server and has no routes to other servers, so no other node can
// share its partitions.
func (c Config) Standalone() bool {
	return c.NatsURL == "" && c.ClusterListen == "" && len(c.Routes) == 0
}

// Simulator configures the built-in payment and delivery providers.
type Simulator struct {
	PaymentSuccessRate     float64
	DeliveryAttemptFailure float64
	MinDelay               time.Duration
	MaxDelay               time.Duration
	// OrdersPerSecond > 0 makes the simulator also place orders, so a fresh
	// `make run` shows orders flowing with nothing else running.
	OrdersPerSecond float64
	SKUs            int
	// Webhooks makes the simulated providers post signed webhooks to the
	// node's HTTP listener instead of publishing on NATS.
	Webhooks bool
}

// Default returns the single-node development configuration.
func Default() Config {
	return Config{
		NodeName:            "oms-1",
		DataDir:             "./data",
		NatsListen:          "127.0.0.1:4222",
		ClusterName:         "oms",
		Partitions:          64,
		Replicas:            1,
		ReservationTTL:      15 * time.Minute,
		Stuck:               StuckAfter{Paid: 24 * time.Hour, InTransit: 7 * 24 * time.Hour},
		MaxDeliveryAttempts: 3,
		IdleTimeout:         2 * time.Minute,
		EndedIdleTimeout:    2 * time.Second,
		RequestTimeout:      10 * time.Second,
		MaxInFlight:         4096,
		StatusInterval:      5 * time.Second,
		Roles:               []string{RoleCommand, RoleQuery},
		Simulate:            true,
		Simulator: Simulator{PaymentSuccessRate: 0.9, DeliveryAttemptFailure: 0.1,
			MinDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, OrdersPerSecond: 1, SKUs: 20},
		Security: Security{JWTAudience: "oms", WebhookTolerance: 5 * time.Minute},
		HTTP: HTTP{Listen: "127.0.0.1:8080", InternalListen: "127.0.0.1:8081", MaxBody: 64 << 10, Rate: 50, Burst: 100,
			MaxStreams: 4096, ReadyMaxLag: 10000},
		Tuning: DefaultTuning(),
	}
}

// DefaultTuning returns the measured defaults of every tunable.
func DefaultTuning() Tuning {
	return Tuning{
		AckWait:                 5 * time.Second,
		MaxAttempts:             20,
		RetryBase:               100 * time.Millisecond,
		RetryMax:                10 * time.Second,
		ReactorWorkers:          64,
		EffectsMaxHeld:          65536,
		InboundMaxAckPending:    64,
		InboundPullBatch:        32,
		ExpirySweep:             time.Second,
		HeartbeatInterval:       time.Second,
		MemberTimeout:           3 * time.Second,
		MemberKeyTTL:            30 * time.Second,
		FloorInterval:           2 * time.Second,
		OrderMailbox:            1024,
		SKUMailbox:              4096,
		GroupCommitMax:          256,
		FencedAttempts:          8,
		SnapshotEvery:           256,
		SnapshotQueue:           4096,
		SnapshotFlushInterval:   200 * time.Millisecond,
		ReadModelCommitInterval: 20 * time.Millisecond,
		DuplicateWindow:         2 * time.Minute,
		TransportMaxAge:         7 * 24 * time.Hour,
	}
}

// Validate names every setting that is wrong, by its flag name.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.NatsURL == "" {
		if _, _, err := net.SplitHostPort(c.NatsListen); err != nil {
			bad("nats-listen", "want host:port, got %q", c.NatsListen)
		}
	}
	if c.ClusterListen != "" {
		if _, _, err := net.SplitHostPort(c.ClusterListen); err != nil {
			bad("cluster-listen", "want host:port, got %q", c.ClusterListen)
		}
	}
	if len(c.Routes) > 0 && c.ClusterListen == "" {
		bad("routes", "need --cluster-listen for this node's own route port")
	}
	if c.NodeName == "" {
		bad("node-name", "is required")
	}
	if c.DataDir == "" {
		bad("data-dir", "is required")
	}
	if c.Partitions < 1 || c.Partitions > 4096 {
		bad("partitions", "must be between 1 and 4096, got %d", c.Partitions)
	}
	if c.Replicas != 1 && c.Replicas != 3 {
		bad("replicas", "must be 1 or 3, got %d", c.Replicas)
	}
	if c.ReservationTTL < time.Second {
		bad("reservation-ttl", "must be at least 1s, got %s", c.ReservationTTL)
	}
	for name, d := range map[string]time.Duration{"stuck-received": c.Stuck.Received, "stuck-paid": c.Stuck.Paid, "stuck-in-transit": c.Stuck.InTransit} {
		if d < 0 || (d == 0 && name != "stuck-received") {
			bad(name, "must be positive, got %s", d)
		}
	}
	if c.MaxDeliveryAttempts < 1 {
		bad("max-delivery-attempts", "must be at least 1, got %d", c.MaxDeliveryAttempts)
	}
	if c.IdleTimeout < 100*time.Millisecond {
		bad("idle-timeout", "must be at least 100ms, got %s", c.IdleTimeout)
	}
	if c.EndedIdleTimeout < 100*time.Millisecond {
		bad("ended-idle-timeout", "must be at least 100ms, got %s", c.EndedIdleTimeout)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		bad("request-timeout", "must be at least 100ms, got %s", c.RequestTimeout)
	}
	if c.MaxInFlight < 1 {
		bad("max-in-flight", "must be at least 1")
	}
	if len(c.Roles) == 0 {
		bad("roles", "give at least one of command, query")
	}
	for _, r := range c.Roles {
		if r != RoleCommand && r != RoleQuery {
			bad("roles", "unknown role %q (want command, query)", r)
		}
	}
	if c.Simulate && !c.Has(RoleCommand) {
		bad("simulate", "the simulators need the command role on the same node")
	}
	if c.Simulate && c.Simulator.Webhooks && c.HTTP.Listen == "" {
		bad("sim-webhooks", "needs --http-listen: the simulators post webhooks to it")
	}
	for name, addr := range map[string]string{"http-listen": c.HTTP.Listen, "internal-listen": c.HTTP.InternalListen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "want host:port, got %q", addr)
		}
	}
	if c.HTTP.Listen != "" && c.HTTP.Listen == c.HTTP.InternalListen && !strings.HasSuffix(c.HTTP.Listen, ":0") {
		bad("internal-listen", "must differ from --http-listen (%s): the internal API is for staff only", c.HTTP.Listen)
	}
	if c.HTTP.MaxBody < 1<<10 {
		bad("http-max-body", "must be at least 1KiB, got %d", c.HTTP.MaxBody)
	}
	if c.HTTP.Rate < 0 || c.HTTP.Burst < 1 {
		bad("http-rate", "must not be negative, with a burst of at least 1 (got %v, %d)", c.HTTP.Rate, c.HTTP.Burst)
	}
	if c.HTTP.MaxStreams < 1 {
		bad("http-max-streams", "must be at least 1")
	}
	for name, t := range map[string]TLS{"http-tls": c.HTTP.TLS, "nats-tls": c.Security.NatsTLS, "cluster-tls": c.Security.ClusterTLS} {
		if (t.Cert == "") != (t.Key == "") {
			bad(name+"-cert", "give both the certificate and its key (--%s-cert, --%s-key)", name, name)
		}
	}
	if c.Security.NatsCreds != "" && c.Security.NatsNkey != "" {
		bad("nats-creds", "give --nats-creds or --nats-nkey, not both")
	}
	if c.NatsURL == "" && (c.Security.NatsCreds != "" || c.Security.NatsNkey != "") {
		bad("nats-creds", "authenticates to an external NATS: give --nats-url too")
	}
	if c.Security.JWKSFile != "" && c.Security.JWTSecretFile != "" {
		bad("jwks-file", "give --jwks-file or --jwt-secret-file, not both")
	}
	if c.Security.WebhookTolerance < time.Second {
		bad("webhook-tolerance", "must be at least 1s, got %s", c.Security.WebhookTolerance)
	}
	s := c.Simulator
	if s.PaymentSuccessRate < 0 || s.PaymentSuccessRate > 1 {
		bad("sim-payment-success", "must be between 0 and 1, got %v", s.PaymentSuccessRate)
	}
	if s.DeliveryAttemptFailure < 0 || s.DeliveryAttemptFailure > 1 {
		bad("sim-delivery-failure", "must be between 0 and 1, got %v", s.DeliveryAttemptFailure)
	}
	if s.MinDelay < 0 || s.MaxDelay < s.MinDelay {
		bad("sim-max-delay", "must be at least sim-min-delay (%s), got %s", s.MinDelay, s.MaxDelay)
	}
	if s.OrdersPerSecond < 0 {
		bad("sim-orders-per-second", "must not be negative")
	}
	if s.SKUs < 1 {
		bad("sim-skus", "must be at least 1")
	}
	errs = append(errs, c.Tuning.validate()...)
	return errors.Join(errs...)
}

func (t Tuning) validate() []error {
	var errs []error
	atLeast := func(name string, v, least int) {
		if v < least {
			errs = append(errs, fmt.Errorf("%s: must be at least %d, got %d", name, least, v))
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, d))
		}
	}
	positive("ack-wait", t.AckWait)
	atLeast("max-attempts", t.MaxAttempts, 1)
	positive("retry-base", t.RetryBase)
	if t.RetryMax < t.RetryBase {
		errs = append(errs, fmt.Errorf("retry-max: must be at least retry-base (%s), got %s", t.RetryBase, t.RetryMax))
	}
	atLeast("reactor-workers", t.ReactorWorkers, 1)
	atLeast("effects-max-held", t.EffectsMaxHeld, 1)
	atLeast("inbound-max-ack-pending", t.InboundMaxAckPending, 1)
	atLeast("inbound-pull-batch", t.InboundPullBatch, 1)
	positive("expiry-sweep", t.ExpirySweep)
	positive("heartbeat-interval", t.HeartbeatInterval)
	if t.MemberTimeout < 2*t.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("member-timeout: must be at least twice heartbeat-interval (%s), got %s",
			t.HeartbeatInterval, t.MemberTimeout))
	}
	if t.MemberKeyTTL < t.MemberTimeout {
		errs = append(errs, fmt.Errorf("member-key-ttl: must be at least member-timeout (%s), got %s", t.MemberTimeout, t.MemberKeyTTL))
	}
	positive("floor-interval", t.FloorInterval)
	atLeast("order-mailbox", t.OrderMailbox, 1)
	atLeast("sku-mailbox", t.SKUMailbox, 1)
	atLeast("group-commit-max", t.GroupCommitMax, 1)
	atLeast("fenced-attempts", t.FencedAttempts, 1)
	atLeast("snapshot-every", t.SnapshotEvery, 1)
	atLeast("snapshot-queue", t.SnapshotQueue, 2)
	positive("snapshot-flush-interval", t.SnapshotFlushInterval)
	positive("read-model-commit-interval", t.ReadModelCommitInterval)
	if t.DuplicateWindow < time.Second {
		errs = append(errs, fmt.Errorf("duplicate-window: must be at least 1s, got %s", t.DuplicateWindow))
	}
	if t.TransportMaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("transport-max-age: must be at least 1h, got %s", t.TransportMaxAge))
	}
	return errs
}
