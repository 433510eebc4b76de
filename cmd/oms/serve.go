package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/node"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/simulator"
)

func serveCommand() *cli.Command {
	d := config.Default()
	flags := withFileSource(append([]cli.Flag{
		&cli.StringFlag{Name: "node-name", Value: d.NodeName, EnvVars: []string{"OMS_NODE_NAME"}, Usage: "name of this node"},
		&cli.StringFlag{Name: "data-dir", Value: d.DataDir, EnvVars: []string{"OMS_DATA_DIR"}, Usage: "JetStream store and bbolt files"},
		&cli.StringFlag{Name: "nats-listen", Value: d.NatsListen, EnvVars: []string{"OMS_NATS_LISTEN"}, Usage: "client address of the embedded NATS server"},
		&cli.StringFlag{Name: "nats-url", EnvVars: []string{"OMS_NATS_URL"}, Usage: "use this NATS instead of embedding one"},
		&cli.StringFlag{Name: "cluster-listen", EnvVars: []string{"OMS_CLUSTER_LISTEN"}, Usage: "host:port the embedded NATS server accepts cluster routes on"},
		&cli.StringSliceFlag{Name: "routes", EnvVars: []string{"OMS_ROUTES"}, Usage: "other nodes' cluster addresses, nats-route://host:port (comma-separated or repeated)"},
		&cli.StringFlag{Name: "cluster-name", Value: d.ClusterName, EnvVars: []string{"OMS_CLUSTER_NAME"}, Usage: "NATS cluster name"},
		&cli.IntFlag{Name: "replicas", EnvVars: []string{"OMS_REPLICAS"}, Usage: "stream replicas, 1 or 3 (default: 3 with two or more routes, else 1)"},
		&cli.IntFlag{Name: "partitions", Value: d.Partitions, EnvVars: []string{"OMS_PARTITIONS"}, Usage: "order partitions (fixed for the life of the data)"},
		&cli.DurationFlag{Name: "reservation-ttl", Value: d.ReservationTTL, EnvVars: []string{"OMS_RESERVATION_TTL"}, Usage: "how long stock is held for an unpaid order"},
		&cli.DurationFlag{Name: "stuck-received", Value: d.Stuck.Received, EnvVars: []string{"OMS_STUCK_RECEIVED"}, Usage: "an unpaid order is stuck after this long (default: the reservation TTL + 1m)"},
		&cli.DurationFlag{Name: "stuck-paid", Value: d.Stuck.Paid, EnvVars: []string{"OMS_STUCK_PAID"}, Usage: "a paid order not yet shipped is stuck after this long"},
		&cli.DurationFlag{Name: "stuck-in-transit", Value: d.Stuck.InTransit, EnvVars: []string{"OMS_STUCK_IN_TRANSIT"}, Usage: "an order in transit is stuck after this long"},
		&cli.IntFlag{Name: "max-delivery-attempts", Value: d.MaxDeliveryAttempts, EnvVars: []string{"OMS_MAX_DELIVERY_ATTEMPTS"}, Usage: "failed attempts before an order is cancelled delivery_failed"},
		&cli.DurationFlag{Name: "idle-timeout", Value: d.IdleTimeout, EnvVars: []string{"OMS_IDLE_TIMEOUT"}, Usage: "passivate an actor after this long without messages"},
		&cli.DurationFlag{Name: "ended-idle-timeout", Value: d.EndedIdleTimeout, EnvVars: []string{"OMS_ENDED_IDLE_TIMEOUT"}, Usage: "passivate the actor of an ended order (completed or cancelled, its effects run) after this long without messages"},
		&cli.DurationFlag{Name: "request-timeout", Value: d.RequestTimeout, EnvVars: []string{"OMS_REQUEST_TIMEOUT"}, Usage: "bound on one command or side effect"},
		&cli.IntFlag{Name: "max-in-flight", Value: d.MaxInFlight, EnvVars: []string{"OMS_MAX_IN_FLIGHT"}, Usage: "requests served at once before answering 503"},
		&cli.DurationFlag{Name: "status-interval", Value: d.StatusInterval, EnvVars: []string{"OMS_STATUS_INTERVAL"}, Usage: "how often to print the status summary (0: never)"},
		&cli.BoolFlag{Name: "simulate", Value: d.Simulate, EnvVars: []string{"OMS_SIMULATE"}, Usage: "run the built-in payment and delivery providers and shopper"},
		&cli.Float64Flag{Name: "sim-payment-success", Value: d.Simulator.PaymentSuccessRate, Usage: "share of simulated payments that succeed"},
		&cli.Float64Flag{Name: "sim-delivery-failure", Value: d.Simulator.DeliveryAttemptFailure, Usage: "share of simulated delivery attempts that fail"},
		&cli.DurationFlag{Name: "sim-min-delay", Value: d.Simulator.MinDelay, Usage: "shortest simulated provider delay"},
		&cli.DurationFlag{Name: "sim-max-delay", Value: d.Simulator.MaxDelay, Usage: "longest simulated provider delay"},
		&cli.Float64Flag{Name: "sim-orders-per-second", Value: d.Simulator.OrdersPerSecond, Usage: "simulated shopper's order rate (0: none)"},
		&cli.IntFlag{Name: "sim-skus", Value: d.Simulator.SKUs, Usage: "size of the simulated catalogue"},
		&cli.StringSliceFlag{Name: "roles", Value: cli.NewStringSlice(d.Roles...), EnvVars: []string{"OMS_ROLES"},
			Usage: "what this node runs: command (actors, commands, provider events) and/or query (read model, lookups, lists, analytics, feeds)"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"OMS_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"OMS_LOG_FORMAT"}, Usage: "text (key=value lines) or json (one object per line, for a log pipeline)"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 15 * time.Second, EnvVars: []string{"OMS_SHUTDOWN_TIMEOUT"},
			Usage: "longest graceful stop; past it the process exits as a crash would"},
		&cli.BoolFlag{Name: "nats-log", EnvVars: []string{"OMS_NATS_LOG"}, Usage: "show the embedded NATS server's own log on stderr"},
		&cli.BoolFlag{Name: "sim-webhooks", EnvVars: []string{"OMS_SIM_WEBHOOKS"}, Usage: "the simulated providers post signed webhooks to --http-listen instead of publishing on NATS"},

		&cli.StringFlag{Name: "http-listen", Value: d.HTTP.Listen, EnvVars: []string{"OMS_HTTP_LISTEN"}, Category: "http",
			Usage: "address of the external HTTP API: customers, live events, providers' webhooks (empty: off)"},
		&cli.StringFlag{Name: "internal-listen", Value: d.HTTP.InternalListen, EnvVars: []string{"OMS_INTERNAL_LISTEN"}, Category: "http",
			Usage: "address of the internal HTTP API: support, admin, operations (empty: off)"},
		&cli.StringFlag{Name: "http-tls-cert", EnvVars: []string{"OMS_HTTP_TLS_CERT"}, Category: "http", Usage: "serve both HTTP listeners over TLS with this certificate (PEM)"},
		&cli.StringFlag{Name: "http-tls-key", EnvVars: []string{"OMS_HTTP_TLS_KEY"}, Category: "http", Usage: "the key of --http-tls-cert (PEM)"},
		&cli.Int64Flag{Name: "http-max-body", Value: d.HTTP.MaxBody, EnvVars: []string{"OMS_HTTP_MAX_BODY"}, Category: "http", Usage: "largest request body, in bytes"},
		&cli.Float64Flag{Name: "http-rate", Value: d.HTTP.Rate, EnvVars: []string{"OMS_HTTP_RATE"}, Category: "http", Usage: "requests per second per principal (0: no limit); beyond it 429 with Retry-After"},
		&cli.IntFlag{Name: "http-burst", Value: d.HTTP.Burst, EnvVars: []string{"OMS_HTTP_BURST"}, Category: "http", Usage: "requests a principal may send at once above its rate"},
		&cli.IntFlag{Name: "http-max-streams", Value: d.HTTP.MaxStreams, EnvVars: []string{"OMS_HTTP_MAX_STREAMS"}, Category: "http", Usage: "live event streams open at once; beyond it 503"},
		&cli.Uint64Flag{Name: "ready-max-lag", Value: d.HTTP.ReadyMaxLag, EnvVars: []string{"OMS_READY_MAX_LAG"}, Category: "http", Usage: "read-model lag (order events) beyond which /readyz answers 503"},

		&cli.StringFlag{Name: "credentials-dir", EnvVars: []string{"OMS_CREDENTIALS_DIR"}, Category: "security",
			Usage: "generated credentials, shared by the nodes of a cluster (default: <data-dir>/credentials)"},
		&cli.StringFlag{Name: "jwks-file", EnvVars: []string{"OMS_JWKS_FILE"}, Category: "security", Usage: "trust bearer tokens signed with a key of this JWKS document (your identity provider's)"},
		&cli.StringFlag{Name: "jwt-secret-file", EnvVars: []string{"OMS_JWT_SECRET_FILE"}, Category: "security", Usage: "trust HS256 bearer tokens signed with this secret (default: the generated one)"},
		&cli.StringFlag{Name: "jwt-issuer", EnvVars: []string{"OMS_JWT_ISSUER"}, Category: "security", Usage: "require this issuer (iss) in bearer tokens"},
		&cli.StringFlag{Name: "jwt-audience", Value: d.Security.JWTAudience, EnvVars: []string{"OMS_JWT_AUDIENCE"}, Category: "security", Usage: "require this audience (aud) in bearer tokens"},
		&cli.StringFlag{Name: "webhook-secrets", EnvVars: []string{"OMS_WEBHOOK_SECRETS"}, Category: "security",
			Usage: "file of \"<provider> <secret>\" lines webhooks are verified against (default: <credentials-dir>/webhooks)"},
		&cli.DurationFlag{Name: "webhook-tolerance", Value: d.Security.WebhookTolerance, EnvVars: []string{"OMS_WEBHOOK_TOLERANCE"}, Category: "security",
			Usage: "how far a webhook's signed timestamp may be from now"},
		&cli.StringFlag{Name: "nats-creds", EnvVars: []string{"OMS_NATS_CREDS"}, Category: "security", Usage: "credentials file (JWT) to connect to --nats-url with"},
		&cli.StringFlag{Name: "nats-nkey", EnvVars: []string{"OMS_NATS_NKEY"}, Category: "security", Usage: "nkey seed file to connect to --nats-url with"},
		&cli.StringFlag{Name: "nats-ca", EnvVars: []string{"OMS_NATS_CA"}, Category: "security", Usage: "CA (PEM) that signed --nats-url's certificate"},
		&cli.StringFlag{Name: "nats-tls-cert", EnvVars: []string{"OMS_NATS_TLS_CERT"}, Category: "security", Usage: "require TLS of the embedded NATS server's clients, with this certificate (PEM)"},
		&cli.StringFlag{Name: "nats-tls-key", EnvVars: []string{"OMS_NATS_TLS_KEY"}, Category: "security", Usage: "the key of --nats-tls-cert"},
		&cli.StringFlag{Name: "cluster-tls-cert", EnvVars: []string{"OMS_CLUSTER_TLS_CERT"}, Category: "security", Usage: "route the cluster over TLS with this certificate (PEM)"},
		&cli.StringFlag{Name: "cluster-tls-key", EnvVars: []string{"OMS_CLUSTER_TLS_KEY"}, Category: "security", Usage: "the key of --cluster-tls-cert"},
		&cli.StringFlag{Name: "cluster-tls-ca", EnvVars: []string{"OMS_CLUSTER_TLS_CA"}, Category: "security", Usage: "CA (PEM) the routes' peers are verified with"},
	}, tuningFlags()...))
	flags = append(flags, &cli.StringFlag{Name: "config", EnvVars: []string{"OMS_CONFIG"},
		Usage: "YAML file of settings, keyed by flag name (flags and environment variables override it)"})
	return &cli.Command{
		Name:   "serve",
		Usage:  "run an oms node (embedded NATS with JetStream unless --nats-url is given)",
		Flags:  flags,
		Before: loadConfigFile(flags),
		Action: serve,
	}
}

// withFileSource lets every flag also be read from the --config file.
func withFileSource(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			out[i] = altsrc.NewStringFlag(f)
		case *cli.StringSliceFlag:
			out[i] = altsrc.NewStringSliceFlag(f)
		case *cli.IntFlag:
			out[i] = altsrc.NewIntFlag(f)
		case *cli.BoolFlag:
			out[i] = altsrc.NewBoolFlag(f)
		case *cli.Float64Flag:
			out[i] = altsrc.NewFloat64Flag(f)
		case *cli.DurationFlag:
			out[i] = altsrc.NewDurationFlag(f)
		default:
			out[i] = f
		}
	}
	return out
}

// loadConfigFile reads --config, when given, before the flags are used.
func loadConfigFile(flags []cli.Flag) cli.BeforeFunc {
	load := altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))
	return func(c *cli.Context) error {
		if c.String("config") == "" {
			return nil
		}
		if err := load(c); err != nil {
			return fmt.Errorf("--config %s: %w", c.String("config"), err)
		}
		return nil
	}
}

// configFrom maps the serve flags into the node's configuration: the one
// place where flags, environment variables and the config file become a
// config.Config.
func configFrom(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	cfg.NodeName = c.String("node-name")
	cfg.DataDir = c.String("data-dir")
	cfg.NatsListen = c.String("nats-listen")
	cfg.NatsURL = c.String("nats-url")
	cfg.NatsLog = c.Bool("nats-log")
	cfg.ClusterListen = c.String("cluster-listen")
	cfg.ClusterName = c.String("cluster-name")
	cfg.Routes = splitList(c.StringSlice("routes"))
	switch {
	case c.IsSet("replicas"):
		cfg.Replicas = c.Int("replicas")
	case len(cfg.Routes) >= 2:
		cfg.Replicas = 3
	}
	cfg.Partitions = c.Int("partitions")
	cfg.ReservationTTL = c.Duration("reservation-ttl")
	cfg.Stuck = config.StuckAfter{Received: c.Duration("stuck-received"), Paid: c.Duration("stuck-paid"), InTransit: c.Duration("stuck-in-transit")}
	cfg.MaxDeliveryAttempts = c.Int("max-delivery-attempts")
	cfg.IdleTimeout = c.Duration("idle-timeout")
	cfg.EndedIdleTimeout = c.Duration("ended-idle-timeout")
	cfg.RequestTimeout = c.Duration("request-timeout")
	cfg.MaxInFlight = c.Int("max-in-flight")
	cfg.StatusInterval = c.Duration("status-interval")
	cfg.Roles = splitList(c.StringSlice("roles"))
	cfg.Simulate = c.Bool("simulate") && cfg.Has(config.RoleCommand)
	cfg.Simulator.PaymentSuccessRate = c.Float64("sim-payment-success")
	cfg.Simulator.DeliveryAttemptFailure = c.Float64("sim-delivery-failure")
	cfg.Simulator.MinDelay = c.Duration("sim-min-delay")
	cfg.Simulator.MaxDelay = c.Duration("sim-max-delay")
	cfg.Simulator.OrdersPerSecond = c.Float64("sim-orders-per-second")
	cfg.Simulator.SKUs = c.Int("sim-skus")
	cfg.Simulator.Webhooks = c.Bool("sim-webhooks")
	cfg.HTTP.Listen = c.String("http-listen")
	cfg.HTTP.InternalListen = c.String("internal-listen")
	cfg.HTTP.TLS = config.TLS{Cert: c.String("http-tls-cert"), Key: c.String("http-tls-key")}
	cfg.HTTP.MaxBody = c.Int64("http-max-body")
	cfg.HTTP.Rate = c.Float64("http-rate")
	cfg.HTTP.Burst = c.Int("http-burst")
	cfg.HTTP.MaxStreams = c.Int("http-max-streams")
	cfg.HTTP.ReadyMaxLag = c.Uint64("ready-max-lag")
	cfg.Security = config.Security{CredentialsDir: c.String("credentials-dir"),
		NatsCreds: c.String("nats-creds"), NatsNkey: c.String("nats-nkey"), NatsCA: c.String("nats-ca"),
		NatsTLS:    config.TLS{Cert: c.String("nats-tls-cert"), Key: c.String("nats-tls-key")},
		ClusterTLS: config.TLS{Cert: c.String("cluster-tls-cert"), Key: c.String("cluster-tls-key"), CA: c.String("cluster-tls-ca")},
		JWKSFile:   c.String("jwks-file"), JWTSecretFile: c.String("jwt-secret-file"), JWTIssuer: c.String("jwt-issuer"),
		JWTAudience: c.String("jwt-audience"), WebhookSecrets: c.String("webhook-secrets"),
		WebhookTolerance: c.Duration("webhook-tolerance")}
	readTuning(c, &cfg.Tuning)
	return cfg, cfg.Validate()
}

// logger writes the node's log to stderr in format (text or json).
func logger(format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is neither text nor json", format)
}

func serve(c *cli.Context) error {
	tuneGC()
	cfg, err := configFrom(c)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	log, err := logger(c.String("log-format"), level)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	n, err := node.Start(startCtx, cfg, log)
	cancel()
	if err != nil {
		return err
	}
	fmt.Printf("oms %s serving (%s)\n  NATS:     %s\n", cfg.NodeName, strings.Join(cfg.Roles, ", "), n.ClientURL())
	scheme := "http"
	if cfg.HTTP.TLS.On() {
		scheme = "https"
	}
	if a := n.HTTPAddr(endpoint.External); a != "" {
		fmt.Printf("  HTTP:     %s://%s (customers, webhooks; %s://%s/openapi.json)\n", scheme, a, scheme, a)
	}
	if a := n.HTTPAddr(endpoint.Internal); a != "" {
		fmt.Printf("  internal: %s://%s (support, admin; dashboard at /, /metrics, /healthz, /readyz)\n", scheme, a)
	}
	fmt.Printf("  data dir: %s\n  credentials: %s\n  try:      oms status; curl -H \"Authorization: Bearer $(oms token issue --sub alice)\" %s://%s/v1/orders\n",
		cfg.DataDir, n.Credentials().Dir, scheme, n.HTTPAddr(endpoint.External))
	var sim *simulator.Simulator
	if cfg.Simulate {
		var hooks []simulator.Webhooks
		if cfg.Simulator.Webhooks {
			h, err := simulatorWebhooks(cfg, n, scheme)
			if err != nil {
				n.Stop()
				return err
			}
			hooks = append(hooks, h)
		}
		if sim, err = simulator.Start(ctx, n.Conn(), cfg.Simulator, log, hooks...); err != nil {
			n.Stop()
			return err
		}
		via := "NATS"
		if cfg.Simulator.Webhooks {
			via = "signed webhooks"
		}
		fmt.Printf("  simulators: payments (%.0f%% succeed), delivery (over %s), shopper at %.1f orders/s\n",
			cfg.Simulator.PaymentSuccessRate*100, via, cfg.Simulator.OrdersPerSecond)
	}
	var tick <-chan time.Time
	if cfg.StatusInterval > 0 {
		t := time.NewTicker(cfg.StatusInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return shutdown(n, sim, c.Duration("shutdown-timeout"))
		case <-tick:
			st, err := n.Status()
			if err != nil {
				log.Warn("status", "err", err)
				continue
			}
			lag := strconv.FormatUint(st.ReadModel.Lag, 10)
			if st.ReadModel.StreamError != "" {
				lag = "unknown (the order stream does not answer)"
			}
			fmt.Printf("%s status: %s | actors: %d orders, %d skus | read model lag %s\n", time.Now().Format(time.TimeOnly),
				formatCounts(st.Orders), st.ActiveOrder, st.ActiveSKU, lag)
		}
	}
}

// shutdown stops the node gracefully, within timeout: past it, or at a
// second signal, the process exits as a crash would. Nothing acknowledged
// is lost then either: the stream is the truth, and unacknowledged
// messages are redelivered to whoever runs next.
func shutdown(n *node.Node, sim *simulator.Simulator, timeout time.Duration) error {
	fmt.Printf("oms: shutting down (at most %s; a second signal stops at once)\n", timeout)
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if sim != nil {
			sim.Stop()
		}
		n.Stop()
	}()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("shutdown took longer than %s: stopped without finishing (nothing acknowledged is lost)", timeout)
	case <-again:
		return errors.New("stopped at the second signal (nothing acknowledged is lost)")
	}
}

// simulatorWebhooks points the simulated providers at the node's external
// listener, signing with their secrets from the node's webhook file.
func simulatorWebhooks(cfg config.Config, n *node.Node, scheme string) (simulator.Webhooks, error) {
	path := cfg.Security.WebhookSecrets
	if path == "" {
		path = n.Credentials().WebhookFile()
	}
	secrets, err := auth.NewWebhookSecrets(path)
	if err != nil {
		return simulator.Webhooks{}, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if cfg.HTTP.TLS.On() {
		// The simulators talk to this very node: its own certificate is the
		// one to trust (it must name the listener's address).
		pem, err := os.ReadFile(cfg.HTTP.TLS.Cert)
		if err != nil {
			return simulator.Webhooks{}, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return simulator.Webhooks{URL: scheme + "://" + n.HTTPAddr(endpoint.External), Secrets: secrets.For, Client: client}, nil
}

// splitList flattens repeated and comma-separated flag values.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func formatCounts(counts map[string]int64) string {
	var parts []string
	seen := map[string]bool{}
	for _, s := range order.Statuses {
		parts = append(parts, fmt.Sprintf("%s=%d", s, counts[string(s)]))
		seen[string(s)] = true
	}
	var extra []string
	for k := range counts {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}
