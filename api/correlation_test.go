package api

import (
	"net/http"
	"regexp"
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

// BenchmarkCorrelation is what every message oms handles and sends on
// costs in correlation: reading the caller's traceparent and making the
// headers that continue it.
func BenchmarkCorrelation(b *testing.B) {
	h := CorrelationHeaders("4bf92f3577b34da6a3ce929d0e0e4736", true) // as a message carries them
	b.ReportAllocs()
	for b.Loop() {
		id, sampled := CorrelationIn(h.Get)
		if CorrelationHeaders(id, sampled) == nil {
			b.Fatal("no headers")
		}
	}
}

// The specification the hand-written checks follow (correlation.go).
var (
	traceParentSpec   = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$`)
	correlationIDSpec = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// FuzzCorrelationChecks: the hand-written traceparent parser and
// correlation ID check accept exactly what their regular expressions
// accept, and read the same trace ID and flags; a trace ID oms continues
// makes a traceparent the parser reads back.
func FuzzCorrelationChecks(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-a3",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"ticket-42", "a:b.c_d-e", "x y", "", strings.Repeat("a", 64), strings.Repeat("a", 65), "caf\u00e9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		trace, flags, ok := parseTraceParent(s)
		m := traceParentSpec.FindStringSubmatch(s)
		if ok != (m != nil) {
			t.Fatalf("%q: parsed %v, the specification says %v", s, ok, m != nil)
		}
		if ok {
			if trace != m[1] || hexByte(m[2]) != flags {
				t.Fatalf("%q: trace %q flags %02x, the specification reads %q %s", s, trace, flags, m[1], m[2])
			}
		}
		if got, want := validCorrelationID(s), correlationIDSpec.MatchString(s); got != want {
			t.Fatalf("%q: correlation ID %v, the specification says %v", s, got, want)
		}
		if isTraceID(s) {
			for _, sampled := range []bool{true, false} {
				tp := TraceParent(s, sampled)
				if got, f, ok := parseTraceParent(tp); !ok || got != s || (f&1 == 1) != sampled || tp[36:52] == "0000000000000000" {
					t.Fatalf("TraceParent(%q, %v) = %q, read back as %q %02x %v", s, sampled, tp, got, f, ok)
				}
			}
		} else if TraceParent(s, true) != "" {
			t.Fatalf("TraceParent(%q) continues what is not a trace ID", s)
		}
	})
}

func hexByte(s string) byte { return unhex(s[0])<<4 | unhex(s[1]) }
