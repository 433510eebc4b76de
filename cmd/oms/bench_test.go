package main

import (
	"strings"
	"testing"

	"github.com/oms-project/oms/bench"
)

// TestBenchTableNamesTheWire: the table shows the messages per order each
// connection sent and received, and leaves the line out when a run against
// a deployment could not read them.
func TestBenchTableNamesTheWire(t *testing.T) {
	r := bench.Result{Orders: 10, Acked: 10, SentPerOrder: 27.7, ReceivedPerOrder: 32.6,
		MessagesPerOrderByConnection: map[string]bench.MessageRate{
			bench.LoadGenerator: {Sent: 1, Received: 5}, "oms bench": {Sent: 19.1, Received: 20},
			"oms bench commands": {Sent: 7.6, Received: 7.6}}}
	var out strings.Builder
	printResult(&out, r)
	want := `sent 27.7, received 32.6 (by connection, sent/received: "oms bench" 19.1/20.0, ` +
		`"oms bench commands" 7.6/7.6, "oms bench load generator" 1.0/5.0)`
	line, ok := lineWith(out.String(), "messages / order")
	if !ok || !strings.HasSuffix(line, want) {
		t.Errorf("table:\n%s\nwant a line %q", out.String(), want)
	}
	r.MessagesPerOrderByConnection = nil
	out.Reset()
	printResult(&out, r)
	if strings.Contains(out.String(), "messages / order") {
		t.Errorf("table without connection figures:\n%s", out.String())
	}
}

func lineWith(text, prefix string) (string, bool) {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimRight(line, "\n"), true
		}
	}
	return "", false
}
