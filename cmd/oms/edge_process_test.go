package main

import (
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
	"github.com/oms-project/oms/jetstream"
)

// readmeSession returns the shell session between the curl-session
// markers of the README.
func readmeSession(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- curl-session -->\\s*```sh\\n(.*?)```\\s*<!-- /curl-session -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no curl session between its markers")
	}
	return string(m[1])
}

// TestReadmeCurlSession runs the README's curl session as written, with
// the real binary as `oms`, from a directory whose ./data is the served
// node's: a customer places, reads, lists, updates, follows and cancels
// an order, and another customer gets 404 for it.
func TestReadmeCurlSession(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's session (apt-get install curl)")
	}
	work := t.TempDir()
	p := startProcess(t, filepath.Join(work, "data"))
	bin := t.TempDir()
	if err := os.Symlink(omsBinary, filepath.Join(bin, "oms")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", readmeSession(t))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "OMS_SERVER="+p.url, "OMS_HTTP="+p.http)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's session: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range []string{`"user":"alice"`, `"deliveryInstructions":"leave with the neighbour"`,
		"event: order.placed", "id: ", `"status":"order_cancelled"`, `"cancelReason":"customer_request"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the session's output lacks %s:\n%s", want, got)
		}
	}
	if lines := strings.Split(strings.TrimSpace(got), "\n"); lines[len(lines)-1] != "404" {
		t.Errorf("bob's read of alice's order: %q, want 404", lines[len(lines)-1])
	}
}

// TestSimulatorsOverWebhooks: with --sim-webhooks the simulated providers
// report through signed webhooks, and the orders complete; every provider
// event in the inbound stream came through the HTTP edge.
func TestSimulatorsOverWebhooks(t *testing.T) {
	p := startProcess(t, t.TempDir(), "--simulate=true", "--sim-webhooks", "--sim-orders-per-second", "20",
		"--sim-min-delay", "1ms", "--sim-max-delay", "5ms", "--sim-payment-success", "1", "--sim-delivery-failure", "0")
	var st api.Status
	eventually(t, 60*time.Second, "simulated orders completed", func() (bool, string) {
		if err := json.Unmarshal([]byte(omsCLI(t, p, "status", "--json")), &st); err != nil {
			return false, err.Error()
		}
		return st.Orders["order_completed"] >= 10, fmt.Sprint(st.Orders)
	})
	_, _, js := connect(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	_, err := jetstream.Replay(ctx, js, jetstream.ReplayOptions{Stream: jetstream.StreamInbound}, func(m natsjs.Msg, _ *natsjs.MsgMetadata) error {
		if id := m.Headers().Get(natsjs.MsgIDHeader); !strings.HasPrefix(id, "webhook:") {
			return fmt.Errorf("%s was not taken through a webhook (message ID %q)", m.Subject(), id)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("inbound: %d provider events, %v", n, err)
	}
}
