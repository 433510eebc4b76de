// Package httpapi serves oms over HTTP, for web and mobile clients and for
// providers. Two listeners: the external one serves customers (their own
// orders, under /v1), the live events of an order (Server-Sent Events) and
// the providers' signed webhooks; the internal one serves support, admin
// and operations. Every operation is the one declared in the endpoint
// package, with the same validation and the same error table; errors are
// RFC 9457 problem details. The OpenAPI 3.1 document at /openapi.json is
// generated from the code's types by huma. Bearer tokens are verified on
// every request, each principal has a rate, bodies and times are bounded,
// and the node's in-flight bound answers 503.
//
// It may import api, auth, endpoint, jetstream and the domain.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
)

// Limits bound what a caller may ask of the HTTP edge.
type Limits struct {
	// MaxBody bounds a request body.
	MaxBody int64
	// Rate and Burst bound each principal's requests (a webhook's: each
	// provider's, per address).
	Rate  float64
	Burst int
	// MaxStreams bounds the live event streams open at once.
	MaxStreams int
	// ReadHeaderTimeout, ReadTimeout and WriteTimeout bound one request
	// (an event stream's writes are bounded one by one instead).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
}

// DefaultLimits are the limits of `oms serve` unless configured.
func DefaultLimits() Limits {
	return Limits{MaxBody: 64 << 10, Rate: 50, Burst: 100, MaxStreams: 4096, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second}
}

// Deps is what the HTTP edge serves.
type Deps struct {
	Operations []endpoint.Operation
	Verifier   *auth.Verifier
	// Webhooks verifies providers' webhooks; Inbound takes what they say.
	Webhooks         *auth.WebhookSecrets
	WebhookTolerance time.Duration
	Inbound          Inbound
	// Events streams an order's events; Owner says whose order it is.
	Events Events
	Owner  func(ctx context.Context, orderID string) (string, error)
	// Limiter is the node's in-flight bound, shared with micro.
	Limiter *endpoint.Limiter
	Limits  Limits
	Version string
	Log     *slog.Logger
	// Handlers are served beside the operations: the probes, the metrics
	// and the profiler.
	Handlers []Handler
}

// Handler is a plain HTTP handler on one listener: public when Roles is
// empty, else only for a bearer token of one of Roles.
type Handler struct {
	Listener endpoint.Listener
	// Pattern is a net/http pattern ("GET /metrics", "/debug/pprof/").
	Pattern string
	Roles   []auth.Role
	Handler http.Handler
}

// Server is the HTTP edge: the external and the internal listener.
type Server struct {
	d       Deps
	rates   *rates
	streams chan struct{}
	apis    map[endpoint.Listener]huma.API
	muxes   map[endpoint.Listener]*http.ServeMux
	servers []*http.Server
	addrs   map[endpoint.Listener]string
}

// New builds both listeners' APIs (nothing listens yet).
func New(d Deps) *Server {
	s := &Server{d: d, rates: newRates(d.Limits.Rate, d.Limits.Burst), streams: make(chan struct{}, max(d.Limits.MaxStreams, 1)),
		apis: map[endpoint.Listener]huma.API{}, muxes: map[endpoint.Listener]*http.ServeMux{},
		addrs: map[endpoint.Listener]string{}}
	for _, l := range []endpoint.Listener{endpoint.External, endpoint.Internal} {
		mux := http.NewServeMux()
		a := humago.New(mux, s.config(l))
		a.UseMiddleware(s.middleware(a))
		s.apis[l], s.muxes[l] = a, mux
	}
	for _, op := range d.Operations {
		for _, r := range op.Routes() {
			r.Register(s.apis[r.Listener], s.operation(op.Name(), r), s.fail)
		}
	}
	s.registerEvents()
	s.registerWebhooks()
	for _, h := range d.Handlers {
		s.muxes[h.Listener].Handle(h.Pattern, s.restrict(h.Roles, h.Handler))
	}
	return s
}

// restrict lets through a request whose bearer token has one of roles,
// and answers the others with the problem an operation would.
func (s *Server) restrict(roles []auth.Role, h http.Handler) http.Handler {
	if len(roles) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		corr, sampled := api.CorrelationOf(r.Header.Get)
		r = r.WithContext(endpoint.WithCorrelation(r.Context(), corr, sampled))
		w.Header().Set(api.CorrelationHeader, corr)
		refuse := func(err error) {
			p := problemOf(endpoint.Fault(r.Context(), s.d.Log, r.URL.Path, err))
			for k, vs := range p.GetHeaders() {
				w.Header()[k] = vs
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(p.Status)
			_ = json.NewEncoder(w).Encode(p)
		}
		p, err := s.principal(r.Header.Get("Authorization"))
		if err != nil {
			refuse(err)
			return
		}
		if !slices.Contains(roles, p.Role) {
			refuse(fmt.Errorf("role %s may not read %s: %w", p.Role, r.URL.Path, api.ErrForbidden))
			return
		}
		if err := s.rates.allow(string(p.Role) + ":" + p.Subject); err != nil {
			refuse(err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// config is one listener's huma configuration: its own OpenAPI document,
// no documentation page (it would load its scripts from a CDN) and no
// $schema links added to replies (they stay what micro replies).
func (s *Server) config(l endpoint.Listener) huma.Config {
	title, desc := "oms", "Orders of customers: place, follow, cancel and update one's own orders, and the providers' webhooks."
	if l == endpoint.Internal {
		title, desc = "oms internal", "Support, admin and operations: every order, stock, analytics, the node's status and rebuilds."
	}
	cfg := huma.DefaultConfig(title, s.d.Version)
	cfg.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaName)
	cfg.Info.Description = desc
	cfg.DocsPath, cfg.SchemasPath = "", ""
	cfg.CreateHooks = nil
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "a token whose sub is the principal and whose role claim is customer, support or admin"},
	}
	return cfg
}

// schemaName names a Go type's schema: its own name, but for the inventory
// types, whose names (View, Event) say what they are only with their
// package's.
func schemaName(t reflect.Type, hint string) string {
	name := huma.DefaultSchemaNamer(t, hint)
	if t.PkgPath() == reflect.TypeFor[inventory.View]().PkgPath() {
		return "Stock" + name
	}
	return name
}

// operation is the OpenAPI operation of an operation's route.
func (s *Server) operation(name string, r endpoint.Route) huma.Operation {
	return huma.Operation{OperationID: name, Method: r.Method, Path: r.Path, Summary: r.Summary, Tags: r.Tags,
		Description: "Also served over NATS; roles: " + roles(r.Roles) + ".",
		Security:    []map[string][]string{{"bearer": {}}}, MaxBodyBytes: s.d.Limits.MaxBody,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests, http.StatusServiceUnavailable}}
}

func roles(rs []auth.Role) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ", "
		}
		out += string(r)
	}
	return out
}

// Handler is one listener's handler (for tests and embedding).
func (s *Server) Handler(l endpoint.Listener) http.Handler { return s.muxes[l] }

// OpenAPI is one listener's OpenAPI document.
func (s *Server) OpenAPI(l endpoint.Listener) *huma.OpenAPI { return s.apis[l].OpenAPI() }

// Listen binds both listeners at once (so that an address in use fails
// start-up now) and serves them until Shutdown; an empty address leaves
// that listener off. cfg, if not nil, serves TLS.
func (s *Server) Listen(external, internal string, cfg *tls.Config) error {
	for l, addr := range map[endpoint.Listener]string{endpoint.External: external, endpoint.Internal: internal} {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("http listen %s: %w", addr, err)
		}
		if cfg != nil {
			ln = tls.NewListener(ln, cfg)
		}
		srv := &http.Server{Handler: s.muxes[l], ReadHeaderTimeout: s.d.Limits.ReadHeaderTimeout,
			ReadTimeout: s.d.Limits.ReadTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10,
			ErrorLog: slog.NewLogLogger(s.d.Log.Handler(), slog.LevelWarn)}
		s.servers = append(s.servers, srv)
		s.addrs[l] = ln.Addr().String()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.d.Log.Error("http server", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return nil
}

// Addr is where a listener listens ("" when it is off).
func (s *Server) Addr(l endpoint.Listener) string { return s.addrs[l] }

// Shutdown stops taking requests and waits for those in flight until ctx
// ends; event streams are cut.
func (s *Server) Shutdown(ctx context.Context) {
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	}
}

// Close closes both listeners and their connections at once, as a crash
// would.
func (s *Server) Close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
}

// fail answers an operation's error: the table's code and kind, an
// internal error's detail logged under a correlation ID.
func (s *Server) fail(ctx context.Context, operation string, err error) error {
	var rl *rateLimited
	p := problemOf(endpoint.Fault(ctx, s.d.Log, operation, err))
	if errors.As(err, &rl) {
		p.GetHeaders().Set("Retry-After", strconv.Itoa(int(rl.after.Seconds())+1))
	}
	return p
}

// middleware authenticates, rate-limits and bounds every request of a.
func (s *Server) middleware(a huma.API) func(huma.Context, func(huma.Context)) {
	refuse := func(ctx huma.Context, err error) {
		p := s.fail(ctx.Context(), ctx.Operation().OperationID, err).(*Problem)
		for k, vs := range p.GetHeaders() {
			for _, v := range vs {
				ctx.AppendHeader(k, v)
			}
		}
		ctx.SetHeader("Content-Type", "application/problem+json")
		ctx.SetStatus(p.Status)
		if err := json.NewEncoder(ctx.BodyWriter()).Encode(p); err != nil {
			s.d.Log.Debug("problem not written", "err", err)
		}
	}
	return func(ctx huma.Context, next func(huma.Context)) {
		corr, sampled := api.CorrelationOf(ctx.Header)
		ctx = huma.WithContext(ctx, endpoint.WithCorrelation(ctx.Context(), corr, sampled))
		ctx.SetHeader(api.CorrelationHeader, corr)
		op := ctx.Operation()
		key := ctx.RemoteAddr()
		if len(op.Security) > 0 {
			p, err := s.principal(ctx.Header("Authorization"))
			if err != nil {
				refuse(ctx, err)
				return
			}
			ctx = huma.WithContext(ctx, auth.WithPrincipal(ctx.Context(), p))
			key = string(p.Role) + ":" + p.Subject
		}
		if err := s.rates.allow(key); err != nil {
			refuse(ctx, err)
			return
		}
		if op.Metadata["stream"] == nil {
			release, ok := s.d.Limiter.Acquire()
			if !ok {
				refuse(ctx, endpoint.ErrBusy)
				return
			}
			defer release()
			_, w := humago.Unwrap(ctx)
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.d.Limits.WriteTimeout))
		}
		next(ctx)
	}
}

// bearer returns the token of an Authorization header.
// principal is who an Authorization header's bearer token names.
func (s *Server) principal(authorization string) (auth.Principal, error) {
	token, ok := bearer(authorization)
	if !ok {
		return auth.Principal{}, fmt.Errorf("give an Authorization: Bearer token: %w", api.ErrUnauthenticated)
	}
	return s.d.Verifier.Verify(token)
}

func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}
