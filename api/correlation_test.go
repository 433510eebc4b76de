package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestCorrelationOf: a valid traceparent gives its trace ID and its
// sampled flag, else a bounded Oms-Correlation-Id is taken as it is, else
// (hostile, too long, all-zero trace) a fresh trace ID is made; neither of
// those is sampled.
func TestCorrelationOf(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, c := range []struct {
		headers map[string]string
		want    string // "" : a fresh one
		sampled bool
	}{
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-01"}, trace, true},
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-00"}, trace, false},
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-03"}, trace, true},
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-01", CorrelationHeader: "mine"}, trace, true},
		{map[string]string{CorrelationHeader: "ticket-42"}, "ticket-42", false},
		{map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "", false},
		{map[string]string{"traceparent": "garbage", CorrelationHeader: "x y\nz"}, "", false},
		{map[string]string{CorrelationHeader: strings.Repeat("a", 65)}, "", false},
		{nil, "", false},
	} {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		got, sampled := CorrelationOf(h.Get)
		switch {
		case c.want != "" && got != c.want:
			t.Errorf("%v: %q, want %q", c.headers, got, c.want)
		case c.want == "" && (len(got) != 32 || TraceParent(got, false) == ""):
			t.Errorf("%v: %q, want a fresh trace ID", c.headers, got)
		case sampled != c.sampled:
			t.Errorf("%v: sampled %v, want %v", c.headers, sampled, c.sampled)
		}
	}
	if TraceParent("ticket-42", true) != "" {
		t.Error("a caller's own ID is not a trace ID")
	}
	// What oms sends on continues the trace with a span of its own and
	// the caller's sampling decision, and reads back as it was sent.
	for _, sampled := range []bool{true, false} {
		tp := TraceParent(trace, sampled)
		h := http.Header{}
		h.Set(TraceParentHeader, tp)
		if id, s := CorrelationIn(h.Get); id != trace || s != sampled || strings.Contains(tp, "00f067aa0ba902b7") {
			t.Errorf("TraceParent(%v) = %q reads back as %q, %v", sampled, tp, id, s)
		}
	}
}
