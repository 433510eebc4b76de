package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/dashboard"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/httpapi"
)

// Check is one readiness condition and what it found.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Readiness is what /readyz answers.
type Readiness struct {
	Status string  `json:"status"` // ready or not ready
	Checks []Check `json:"checks"`
}

// probeTimeout bounds one readiness check.
const probeTimeout = 2 * time.Second

// Ready checks what a node needs to serve: the order stream answers, the
// node has its place in the cluster (and so its partitions), and its read
// model is within --ready-max-lag events of the stream.
func (n *Node) Ready(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// A node with a read model asks the stream once, through it.
	var rm api.ReadModel
	var rmErr error
	if n.queries != nil {
		rm, rmErr = n.queries.Progress(ctx)
	} else if info, err := n.orders.Info(ctx); err != nil {
		rm.StreamError = err.Error()
	} else {
		rm.Stream = info.State.LastSeq
	}
	streams := Check{Name: "streams", OK: true, Detail: fmt.Sprintf("order stream at sequence %d", rm.Stream)}
	if rm.StreamError != "" {
		streams = Check{Name: "streams", Detail: "the order stream does not answer: " + rm.StreamError}
	}
	checks := []Check{streams}
	cs := n.cluster.Status()
	member := Check{Name: "partitions", Detail: "this node is not among the live members yet"}
	for _, m := range cs.Members {
		if m.Name == cs.Self {
			member = Check{Name: "partitions", OK: true, Detail: fmt.Sprintf("owns %d of %d partitions, %d members", len(m.Owns), cs.Partitions, len(cs.Members))}
		}
	}
	checks = append(checks, member)
	if n.queries != nil {
		switch {
		case rmErr != nil:
			checks = append(checks, Check{Name: "read model", Detail: "unreadable: " + rmErr.Error()})
		case rm.StreamError != "":
			checks = append(checks, Check{Name: "read model", Detail: fmt.Sprintf("at sequence %d; its lag is unknown while the order stream does not answer", rm.Applied)})
		case rm.Lag > n.cfg.HTTP.ReadyMaxLag:
			checks = append(checks, Check{Name: "read model", Detail: fmt.Sprintf("%d events behind the stream (more than %d)", rm.Lag, n.cfg.HTTP.ReadyMaxLag)})
		default:
			checks = append(checks, Check{Name: "read model", OK: true, Detail: fmt.Sprintf("%d events behind the stream", rm.Lag)})
		}
	}
	r := Readiness{Status: "ready", Checks: checks}
	for _, c := range checks {
		if !c.OK {
			r.Status = "not ready"
		}
	}
	return r
}

// plainHandlers are the listeners' handlers beside the operations: on the
// internal one /healthz and /readyz for probes (public: a kubelet sends no
// token, and they tell no order), /metrics for Prometheus and the
// dashboard's feed (monitor, support, admin), the Go profiler (admin) and
// the dashboard's page; on the external one the customers' tracking page.
// The pages are public and hold no data: what they show they ask for with
// the token they were given.
func (n *Node) plainHandlers() []httpapi.Handler {
	internal := func(pattern string, roles []auth.Role, h http.Handler) httpapi.Handler {
		return httpapi.Handler{Listener: endpoint.Internal, Pattern: pattern, Roles: roles, Handler: h}
	}
	external := func(pattern string, h http.Handler) httpapi.Handler {
		return httpapi.Handler{Listener: endpoint.External, Pattern: pattern, Handler: h}
	}
	scrapers := []auth.Role{auth.RoleMonitor, auth.RoleSupport, auth.RoleAdmin}
	admin := []auth.Role{auth.RoleAdmin}
	return []httpapi.Handler{
		internal("GET /healthz", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			status, code := "alive", http.StatusOK
			if n.nc.IsClosed() || n.cmdNC.IsClosed() {
				status, code = "connections closed", http.StatusServiceUnavailable
			}
			writeJSON(w, code, map[string]string{"status": status, "node": n.cfg.NodeName})
		})),
		internal("GET /readyz", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ready := n.Ready(r.Context())
			code := http.StatusOK
			if ready.Status != "ready" {
				code = http.StatusServiceUnavailable
			}
			writeJSON(w, code, ready)
		})),
		internal("GET /metrics", scrapers, n.metrics.Handler()),
		internal("GET /{$}", nil, dashboard.Page("dashboard.html")),
		internal("GET /assets/", nil, dashboard.Assets()),
		internal("GET /dashboard/feed", scrapers, dashboard.NewFeed(n.metrics.Gatherer(), n.ClusterStatus, time.Second, 64)),
		external("GET /track/{id}", dashboard.TrackPage()),
		external("GET /assets/", dashboard.Assets()),
		internal("/debug/pprof/", admin, http.HandlerFunc(pprof.Index)),
		internal("/debug/pprof/cmdline", admin, http.HandlerFunc(pprof.Cmdline)),
		internal("/debug/pprof/profile", admin, http.HandlerFunc(pprof.Profile)),
		internal("/debug/pprof/symbol", admin, http.HandlerFunc(pprof.Symbol)),
		internal("/debug/pprof/trace", admin, http.HandlerFunc(pprof.Trace)),
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
