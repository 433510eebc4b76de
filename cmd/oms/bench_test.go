package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/oms-project/oms/bench"
)

// TestBenchTakesServesTuningFlags: oms bench accepts oms serve's tuning
// flags for its node, and refuses a bad one naming it, before it starts
// (no result printed for a run that did not happen).
func TestBenchTakesServesTuningFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, omsBinary, append([]string{"bench", "--orders", "20", "--skus", "5",
			"--concurrency", "4", "--json"}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	if out, stderr, err := run("--duplicate-window", "500ms"); err == nil || out != "" ||
		!strings.Contains(stderr, "duplicate-window: must be at least 1s") {
		t.Fatalf("--duplicate-window 500ms: err %v, stdout %q, stderr %q; want a refusal naming the flag and no result",
			err, out, stderr)
	}
	out, stderr, err := run("--duplicate-window", "15s", "--read-model-commit-interval", "5ms", "--reactor-workers", "8")
	if err != nil {
		t.Fatalf("bench with tuning flags: %v\n%s", err, stderr)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench output %q: %v", out, err)
	}
	if res.Acked != 20 || res.Completed+res.Cancelled != 20 {
		t.Fatalf("bench with tuning flags: %d acked, %d completed, %d cancelled; want every one of 20 done",
			res.Acked, res.Completed, res.Cancelled)
	}
}

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
