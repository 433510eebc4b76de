package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// omsCLI runs the oms binary against url and returns its stdout.
// omsCLI runs the CLI against p, as the admin.
func omsCLI(t *testing.T, p *process, args ...string) string {
	t.Helper()
	return omsRaw(t, append([]string{"--server", p.url, "--nkey", p.nkey(credentials.UserAdmin)}, args...)...)
}

// omsRaw runs the binary with exactly args and returns its output.
func omsRaw(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, omsBinary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("oms %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestCLIReadSideAndReplay drives a served node through the CLI: orders
// placed and followed to completion, listed, reported, then the order
// stream replayed to a file and to another subject, both compared with
// the stream.
func TestCLIReadSideAndReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := startProcess(t, t.TempDir(), "--simulate", "--sim-orders-per-second", "0", "--sim-min-delay", "10ms",
		"--sim-max-delay", "50ms", "--sim-payment-success", "1", "--sim-delivery-failure", "0")
	omsCLI(t, p, "stock", "set", "CLI-1", "100")
	var ids []string
	for i := range 5 {
		out := omsCLI(t, p, "order", "place", "--user", "cli-user", "--item", "CLI-1:2:1500", "--country", "DE",
			"--postal-code", "10115", "--address", "Street 1", "--phone", "+49 30 1234567", "--promo", "CLIPROMO",
			"--idempotency-key", fmt.Sprint("cli-", i))
		var o order.Order
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("place output: %v\n%s", err, out)
		}
		ids = append(ids, o.ID)
	}
	// watch follows the first order to completion and prints every change.
	lines := strings.Split(strings.TrimSpace(omsCLI(t, p, "order", "watch", ids[0], "--until-done", "--json")), "\n")
	var lastChange api.OrderChange
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &lastChange); err != nil || lastChange.Event.Status != order.StatusCompleted || len(lines) != 5 {
		t.Fatalf("watch printed %d lines, last %+v (%v)", len(lines), lastChange, err)
	}
	eventually(t, 30*time.Second, "all completed", func() (bool, string) {
		var page api.OrderPage
		out := omsCLI(t, p, "order", "list", "--user", "cli-user", "--status", "order_completed", "--json", "--all")
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			return false, err.Error()
		}
		return len(page.Orders) == 5, fmt.Sprintf("%d completed", len(page.Orders))
	})
	table := omsCLI(t, p, "order", "list", "--promo", "CLIPROMO")
	if strings.Count(table, "order_completed") != 5 {
		t.Fatalf("list table:\n%s", table)
	}
	var report struct {
		Promotions []struct {
			Code   string `json:"code"`
			Orders int64  `json:"orders"`
			Paid   int64  `json:"paidOrders"`
		} `json:"promotions"`
	}
	if err := json.Unmarshal([]byte(omsCLI(t, p, "report", "--json")), &report); err != nil ||
		len(report.Promotions) != 1 || report.Promotions[0].Orders != 5 || report.Promotions[0].Paid != 5 {
		t.Fatalf("report: %+v %v", report, err)
	}
	// The client flags after the subcommand and its argument, as people
	// type them; text by default, JSON with --json.
	conn := []string{"--server", p.url, "--nkey", p.nkey(credentials.UserAdmin)}
	if text := omsRaw(t, append([]string{"order", "get", ids[0]}, conn...)...); !strings.Contains(text, "order_completed") ||
		!strings.Contains(text, "CLI-1 × 2") || strings.Contains(text, "{") {
		t.Fatalf("order get:\n%s", text)
	}
	var got order.Order
	if err := json.Unmarshal([]byte(omsRaw(t, append([]string{"order", "get", ids[0], "--json"}, conn...)...)), &got); err != nil || got.ID != ids[0] {
		t.Fatalf("order get --json: %+v %v", got, err)
	}
	if text := omsRaw(t, append([]string{"status"}, conn...)...); !regexp.MustCompile(`order_completed\s+5\n`).MatchString(text) {
		t.Fatalf("status:\n%s", text)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(omsRaw(t, append([]string{"status", "--json"}, conn...)...)), &st); err != nil || st.Orders["order_completed"] != 5 {
		t.Fatalf("status --json: %+v %v", st, err)
	}
	// The first order's causal timeline, and no order stuck.
	if text := omsRaw(t, append([]string{"explain", ids[0]}, conn...)...); !strings.Contains(text, "caused by provider payment:") ||
		!strings.Contains(text, "→ payment") || !strings.Contains(text, "order.completed → order_completed") {
		t.Fatalf("explain:\n%s", text)
	}
	var stuck api.StuckOrders
	if err := json.Unmarshal([]byte(omsCLI(t, p, "stuck", "--json")), &stuck); err != nil || len(stuck.Orders) != 0 || stuck.ServiceLevels["order_paid"] != "24h0m0s" {
		t.Fatalf("stuck: %+v %v", stuck, err)
	}

	// Replay the order stream to a file: one JSON line per stored event.
	nc, _, js := connect(t, p)
	stream, err := js.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "orders.jsonl")
	omsCLI(t, p, "replay", "--stream", jetstream.StreamOrders, "--subject", "oms.events.order.>", "--out", file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var replayed []ReplayLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l ReplayLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		replayed = append(replayed, l)
	}
	if uint64(len(replayed)) != info.State.Msgs {
		t.Fatalf("replayed %d lines, stream holds %d", len(replayed), info.State.Msgs)
	}
	for _, l := range replayed {
		m, err := stream.GetMsg(ctx, l.Seq)
		if err != nil || m.Subject != l.Subject || !jsonEqual(m.Data, l.Data) {
			t.Fatalf("line %d differs from the stream: %v", l.Seq, err)
		}
	}

	// Replay to another subject, captured by a stream: same count, same
	// payloads. A message already there first proves the source's fencing
	// headers are not carried over (they would refuse the copies).
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "COPY", Subjects: []string{"copy.orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "copy.orders", []byte(`{"already":"there"}`)); err != nil {
		t.Fatal(err)
	}
	omsCLI(t, p, "replay", "--stream", jetstream.StreamOrders, "--subject", "oms.events.order."+ids[0], "--to", "copy.orders", "--rate", "1000")
	// Replaying again within the duplicate window stores nothing new.
	omsCLI(t, p, "replay", "--stream", jetstream.StreamOrders, "--subject", "oms.events.order."+ids[0], "--to", "copy.orders")
	copyStream, _ := js.Stream(ctx, "COPY")
	var src []*natsjs.RawStreamMsg
	if err := jetstream.Fold(ctx, stream, jetstream.OrderEventsPrefix+ids[0], 0, func(m *natsjs.RawStreamMsg) error {
		src = append(src, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "copies stored", func() (bool, string) {
		ci, err := copyStream.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for seq := uint64(1); seq <= ci.State.LastSeq; seq++ {
			if m, err := copyStream.GetMsg(ctx, seq); err == nil {
				got = append(got, m.Header.Get("Nats-Msg-Id"))
			}
		}
		return ci.State.Msgs == uint64(len(src))+1, fmt.Sprint(ci.State.Msgs, " of ", len(src)+1, " ", got)
	})
	for i, m := range src {
		c, err := copyStream.GetMsg(ctx, uint64(i+2))
		if err != nil || !bytes.Equal(c.Data, m.Data) {
			t.Fatalf("copy %d differs: %v", i+1, err)
		}
	}
	_ = nc
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// TestServeReadsConfigFile: settings come from --config, flags override it.
func TestServeReadsConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(path, []byte("node-name: from-file\npartitions: 8\nroles: [command, query]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// startProcess passes --partitions 16, which must win over the file.
	p := startProcess(t, filepath.Join(dir, "data"), "--config", path)
	var st api.Status
	if err := json.Unmarshal([]byte(omsCLI(t, p, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "from-file" || st.Partitions != 16 {
		t.Fatalf("status %+v: want node from-file (file) and 16 partitions (flag)", st)
	}
}
