package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestCorrelationOf: a valid traceparent gives its trace ID, else a
// bounded Oms-Correlation-Id is taken as it is, else (hostile, too long,
// all-zero trace) a fresh trace ID is made.
func TestCorrelationOf(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, c := range []struct {
		headers map[string]string
		want    string // "" : a fresh one
	}{
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-01"}, trace},
		{map[string]string{"traceparent": "00-" + trace + "-00f067aa0ba902b7-01", CorrelationHeader: "mine"}, trace},
		{map[string]string{CorrelationHeader: "ticket-42"}, "ticket-42"},
		{map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{map[string]string{"traceparent": "garbage", CorrelationHeader: "x y\nz"}, ""},
		{map[string]string{CorrelationHeader: strings.Repeat("a", 65)}, ""},
		{nil, ""},
	} {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		got := CorrelationOf(h.Get)
		switch {
		case c.want != "" && got != c.want:
			t.Errorf("%v: %q, want %q", c.headers, got, c.want)
		case c.want == "" && (len(got) != 32 || TraceParent(got) == ""):
			t.Errorf("%v: %q, want a fresh trace ID", c.headers, got)
		}
	}
	if TraceParent("ticket-42") != "" {
		t.Error("a caller's own ID is not a trace ID")
	}
}
