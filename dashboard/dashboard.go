// Package dashboard serves the pages people look at rather than read: the
// operator dashboard (the internal listener's /) and the customer's
// tracking page (the external listener's /track/{id}). Their HTML, script
// and style are embedded in the binary: no CDN, they work offline. Both
// update live from Server-Sent Events, with no page reload.
//
// The dashboard is a view of the node's Prometheus registry, so its
// numbers are those of /metrics, plus the cluster's partition map; an
// order searched opens its timeline (GET /v1/orders/{id}/timeline). The
// tracking page shows one order (GET /v1/orders/{id}) and follows its
// events (GET /v1/orders/{id}/events). The pages are public, the data is
// not: each request they make carries the bearer token the page was given.
//
// It may import api, nothing else of oms.
package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/oms-project/oms/api"
)

//go:embed assets
var assets embed.FS

// Assets serves the pages' script and style under /assets/.
func Assets() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	return cacheControl(http.StripPrefix("/assets/", http.FileServerFS(sub)))
}

// Page serves one embedded HTML page (dashboard.html, track.html).
func Page(name string) http.Handler {
	return cacheControl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := assets.ReadFile("assets/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The pages load nothing from elsewhere, and say so.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(data)
	}))
}

func cacheControl(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// Feed is the dashboard's live data; NewFeed makes one.
type Feed struct {
	gatherer prometheus.Gatherer
	// cluster is the cluster as this node sees it (the partition map).
	cluster  func() api.ClusterStatus
	interval time.Duration
	// streams bounds the feeds open at once.
	streams chan struct{}
}

// NewFeed returns a feed of snapshots every interval, at most maxStreams
// open at once.
func NewFeed(g prometheus.Gatherer, cluster func() api.ClusterStatus, interval time.Duration, maxStreams int) *Feed {
	return &Feed{gatherer: g, cluster: cluster, interval: interval, streams: make(chan struct{}, max(maxStreams, 1))}
}

// ServeHTTP streams a snapshot every interval (event: snapshot) until the
// client goes away.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case f.streams <- struct{}{}:
		defer func() { <-f.streams }()
	default:
		http.Error(w, "too many dashboard feeds open", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	var prev *figures
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		cur, err := f.read()
		if err == nil {
			data, _ := json.Marshal(snapshotOf(prev, cur, f.cluster()))
			// Each write is bounded on its own: the feed outlives the
			// server's write timeout.
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			prev = cur
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// figures are the registry's samples at one time.
type figures struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

func (f *Feed) read() (*figures, error) {
	fams, err := f.gatherer.Gather()
	if err != nil && len(fams) == 0 {
		return nil, err
	}
	cur := &figures{at: time.Now(), families: map[string]*dto.MetricFamily{}}
	for _, fam := range fams {
		cur.families[fam.GetName()] = fam
	}
	return cur, nil
}

// Snapshot is one update of the dashboard.
type Snapshot struct {
	At   time.Time `json:"at"`
	Node string    `json:"node"`
	// Totals since the node started (its counters), and their rates over
	// the last interval.
	Placed             float64 `json:"placed"`
	Completed          float64 `json:"completed"`
	Cancelled          float64 `json:"cancelled"`
	PlacedPerSecond    float64 `json:"placedPerSecond"`
	CompletedPerSecond float64 `json:"completedPerSecond"`
	// PlaceP50Ms and PlaceP99Ms are place→ack over the last interval
	// (from the histogram's buckets), nil with no placement.
	PlaceP50Ms   *float64             `json:"placeP50Ms"`
	PlaceP99Ms   *float64             `json:"placeP99Ms"`
	Orders       map[string]float64   `json:"orders"`
	Stuck        map[string]float64   `json:"stuck"`
	DeadLetters  map[string]float64   `json:"deadLetters"`
	ReadModelLag float64              `json:"readModelLag"`
	Consumers    []Consumer           `json:"consumers"`
	Cluster      api.ClusterStatus    `json:"cluster"`
	Actors       map[string]float64   `json:"actors"`
	Operations   map[string]Operation `json:"operations"`
}

// Consumer is one durable consumer's backlog.
type Consumer struct {
	Stream      string  `json:"stream"`
	Name        string  `json:"name"`
	Pending     float64 `json:"pending"`
	AckPending  float64 `json:"ackPending"`
	Redelivered float64 `json:"redelivered"`
}

// Operation is one API operation's calls since the node started.
type Operation struct {
	Calls  float64 `json:"calls"`
	Errors float64 `json:"errors"`
}

// The series the tiles and charts are drawn from.
var (
	placedOK  = map[string]string{"operation": "orders_place", "outcome": "ok"}
	completed = map[string]string{"type": "order.completed"}
)

func snapshotOf(prev, cur *figures, cluster api.ClusterStatus) Snapshot {
	s := Snapshot{At: cur.at.UTC(), Node: cluster.Node, Cluster: cluster, Orders: cur.byLabel("oms_orders", "status"),
		Stuck: cur.byLabel("oms_orders_stuck", "status"), DeadLetters: cur.byLabel("oms_dead_letters_stored", "source"),
		Actors: cur.byLabel("oms_actors_active", "kind"), Operations: map[string]Operation{}, Consumers: []Consumer{}}
	s.ReadModelLag = cur.sum("oms_read_model_lag_events", nil)
	s.Placed = cur.count("oms_operation_duration_seconds", placedOK)
	s.Completed = cur.sum("oms_order_events_total", completed)
	s.Cancelled = cur.sum("oms_order_events_total", map[string]string{"type": "order.cancelled"})
	for _, m := range cur.metrics("oms_operation_duration_seconds") {
		l := labels(m)
		op := s.Operations[l["operation"]]
		op.Calls += float64(m.GetHistogram().GetSampleCount())
		if l["outcome"] != "ok" {
			op.Errors += float64(m.GetHistogram().GetSampleCount())
		}
		s.Operations[l["operation"]] = op
	}
	backlog := map[[2]string]*Consumer{}
	for _, name := range []string{"oms_consumer_pending_messages", "oms_consumer_ack_pending_messages", "oms_consumer_redelivered_messages"} {
		for _, m := range cur.metrics(name) {
			l := labels(m)
			k := [2]string{l["stream"], l["consumer"]}
			c := backlog[k]
			if c == nil {
				c = &Consumer{Stream: k[0], Name: k[1]}
				backlog[k] = c
			}
			v := m.GetGauge().GetValue()
			switch name {
			case "oms_consumer_pending_messages":
				c.Pending = v
			case "oms_consumer_ack_pending_messages":
				c.AckPending = v
			default:
				c.Redelivered = v
			}
		}
	}
	for _, c := range backlog {
		s.Consumers = append(s.Consumers, *c)
	}
	sort.Slice(s.Consumers, func(i, j int) bool {
		a, b := s.Consumers[i], s.Consumers[j]
		if a.Pending+a.AckPending != b.Pending+b.AckPending {
			return a.Pending+a.AckPending > b.Pending+b.AckPending
		}
		return a.Stream+a.Name < b.Stream+b.Name
	})
	if prev != nil {
		secs := cur.at.Sub(prev.at).Seconds()
		if secs > 0 {
			s.PlacedPerSecond = math.Max(0, s.Placed-prev.count("oms_operation_duration_seconds", placedOK)) / secs
			s.CompletedPerSecond = math.Max(0, s.Completed-prev.sum("oms_order_events_total", completed)) / secs
		}
		before, now := prev.histogram("oms_operation_duration_seconds", placedOK), cur.histogram("oms_operation_duration_seconds", placedOK)
		s.PlaceP50Ms, s.PlaceP99Ms = quantileMs(before, now, 0.5), quantileMs(before, now, 0.99)
	}
	return s
}

func (f *figures) metrics(name string) []*dto.Metric {
	if fam := f.families[name]; fam != nil {
		return fam.GetMetric()
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func matches(m *dto.Metric, want map[string]string) bool {
	l := labels(m)
	for k, v := range want {
		if l[k] != v {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// sum adds the values of the metrics of name matching want.
func (f *figures) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range f.metrics(name) {
		if matches(m, want) {
			total += value(m)
		}
	}
	return total
}

// count adds the sample counts of the histograms of name matching want.
func (f *figures) count(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range f.metrics(name) {
		if matches(m, want) {
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// byLabel maps a label's values to the metrics' values.
func (f *figures) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.metrics(name) {
		out[labels(m)[label]] += value(m)
	}
	return out
}

func (f *figures) histogram(name string, want map[string]string) *dto.Histogram {
	for _, m := range f.metrics(name) {
		if matches(m, want) {
			return m.GetHistogram()
		}
	}
	return nil
}

// quantileMs estimates the q-quantile, in milliseconds, of the samples a
// histogram took between prev and cur, interpolating inside the bucket
// it falls in (as Prometheus's histogram_quantile does); nil without
// samples.
func quantileMs(prev, cur *dto.Histogram, q float64) *float64 {
	if cur == nil {
		return nil
	}
	before := map[float64]uint64{}
	var prevCount uint64
	if prev != nil {
		prevCount = prev.GetSampleCount()
		for _, b := range prev.GetBucket() {
			before[b.GetUpperBound()] = b.GetCumulativeCount()
		}
	}
	total := cur.GetSampleCount() - prevCount
	if total == 0 || cur.GetSampleCount() < prevCount {
		return nil
	}
	rank := q * float64(total)
	lower, below := 0.0, 0.0
	for _, b := range cur.GetBucket() {
		n := float64(b.GetCumulativeCount() - before[b.GetUpperBound()])
		if n >= rank {
			upper := b.GetUpperBound()
			v := lower
			if n > below {
				v = lower + (upper-lower)*(rank-below)/(n-below)
			}
			ms := v * 1000
			return &ms
		}
		lower, below = b.GetUpperBound(), n
	}
	ms := lower * 1000 // in the +Inf bucket: at least the last bound
	return &ms
}

// TrackPage serves the tracking page at /track/{id}; an ID that cannot be
// an order's is not found.
func TrackPage() http.Handler {
	page := Page("track.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validID(r.PathValue("id")) {
			http.NotFound(w, r)
			return
		}
		page.ServeHTTP(w, r)
	})
}

// validID keeps what a page is asked for an order ID.
func validID(id string) bool {
	return len(id) > 0 && len(id) <= 64 && strings.Trim(id, "0123456789abcdef-") == ""
}
