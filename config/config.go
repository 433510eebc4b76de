// Package config holds the one configuration struct of an oms node, its
// defaults for single-node development, and its validation.
package config

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is everything a node needs. Zero values are replaced by Default's.
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

	ReservationTTL      time.Duration
	MaxDeliveryAttempts int
	IdleTimeout         time.Duration
	RequestTimeout      time.Duration
	ReactorWorkers      int
	MaxInFlight         int
	StatusInterval      time.Duration
	// SnapshotEvery queues an actor snapshot after this many events.
	SnapshotEvery int

	// Roles says what the node runs: "command" (actors, reactor, provider
	// consumers, commands) and "query" (read model, lookups, lists,
	// analytics, feeds).
	Roles []string

	Simulate  bool
	Simulator Simulator
}

// Role names.
const (
	RoleCommand = "command"
	RoleQuery   = "query"
)

// Has reports whether the node runs role r.
func (c Config) Has(r string) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
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
		MaxDeliveryAttempts: 3,
		IdleTimeout:         2 * time.Minute,
		RequestTimeout:      10 * time.Second,
		ReactorWorkers:      64,
		MaxInFlight:         4096,
		StatusInterval:      5 * time.Second,
		SnapshotEvery:       256,
		Roles:               []string{RoleCommand, RoleQuery},
		Simulate:            true,
		Simulator: Simulator{PaymentSuccessRate: 0.9, DeliveryAttemptFailure: 0.1,
			MinDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, OrdersPerSecond: 1, SKUs: 20},
	}
}

// Validate names the first setting that is wrong.
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
	if c.MaxDeliveryAttempts < 1 {
		bad("max-delivery-attempts", "must be at least 1, got %d", c.MaxDeliveryAttempts)
	}
	if c.IdleTimeout < 100*time.Millisecond {
		bad("idle-timeout", "must be at least 100ms, got %s", c.IdleTimeout)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		bad("request-timeout", "must be at least 100ms, got %s", c.RequestTimeout)
	}
	if c.ReactorWorkers < 1 {
		bad("reactor-workers", "must be at least 1")
	}
	if c.MaxInFlight < 1 {
		bad("max-in-flight", "must be at least 1")
	}
	if c.SnapshotEvery < 1 {
		bad("snapshot-every", "must be at least 1")
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
	return errors.Join(errs...)
}
