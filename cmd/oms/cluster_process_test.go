package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/simulator"
)

// TestClusterOfProcessesSurvivesKill9 runs three `oms serve` processes as
// one cluster on loopback and SIGKILLs the one leading the order stream
// while orders are placed through all three: every acknowledged order
// reaches a final status on the survivors, with no cause applied twice.
func TestClusterOfProcessesSurvivesKill9(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The cluster ports are chosen before the processes bind them, so
	// another test may take one meanwhile; a node that cannot bind exits,
	// and its peers wait for it forever (R3 needs all three). Start again
	// on other ports then.
	var procs []*process
	var err error
	for attempt := 1; procs == nil; attempt++ {
		if procs, err = startCluster(t); err != nil {
			if attempt == 3 {
				t.Fatal(err)
			}
			t.Logf("cluster start %d failed, trying other ports: %v", attempt, err)
		}
	}
	clients := make([]*client.Client, 3)
	for i, p := range procs {
		nc, cl, _ := connect(t, p)
		_ = nc
		cl.Timeout = 3 * time.Second
		clients[i] = cl
	}
	eventually(t, 60*time.Second, "three members", func() (bool, string) {
		var st api.ClusterStatus
		err := clients[0].Request(ctx, api.SubjectClusterStatus, struct{}{}, &st)
		return err == nil && len(st.Members) == 3, fmt.Sprint(st.Members, err)
	})
	var st api.ClusterStatus
	if err := clients[0].Request(ctx, api.SubjectClusterStatus, struct{}{}, &st); err != nil {
		t.Fatal(err)
	}
	victim := -1
	for _, s := range st.Streams {
		if s.Stream == jetstream.StreamOrders {
			fmt.Sscanf(s.Leader, "p%d", &victim)
		}
	}
	if victim < 1 {
		t.Fatalf("no leader for %s: %+v", jetstream.StreamOrders, st.Streams)
	}
	victim--
	survivor := (victim + 1) % 3
	// The providers run in the test, connected to a survivor.
	snc, _, _ := connect(t, procs[survivor])
	sim, err := simulator.Start(ctx, snc, config.Simulator{PaymentSuccessRate: 1, MinDelay: 10 * time.Millisecond,
		MaxDelay: 50 * time.Millisecond, SKUs: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	if _, err := clients[survivor].SetStock(ctx, "K9", 1000); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	placeAll := func(from, to int, nodes []int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += 4 {
					req := api.PlaceOrder{IdempotencyKey: fmt.Sprint("k9-", i), User: "u", NewOrder: api.NewOrder{Currency: "EUR",
						Items:       []order.Item{{SKU: "K9", Quantity: 1, UnitPrice: 100}},
						Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}}}
					if o, err := clients[nodes[i%len(nodes)]].PlaceOrder(ctx, req); err == nil {
						mu.Lock()
						acked = append(acked, o.ID)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}
	placeAll(0, 60, []int{0, 1, 2})
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	if before != 60 {
		t.Fatalf("%d of 60 orders acknowledged before the kill", before)
	}
	procs[victim].kill(t)
	killed := time.Now()
	// Those sent to the dead node, or timing out during the leader
	// election, are not acknowledged: a client would retry them.
	placeAll(60, 120, []int{0, 1, 2})
	t.Logf("killed p%d (leader of %s); %d orders acknowledged", victim+1, jetstream.StreamOrders, len(acked))
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	live := clients[survivor]
	for _, id := range ids {
		eventually(t, 90*time.Second, "order "+id+" final", func() (bool, string) {
			o, err := live.GetOrder(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			return o.Status.Terminal(), string(o.Status)
		})
	}
	t.Logf("all %d acknowledged orders final %s after the kill", len(ids), time.Since(killed).Round(time.Millisecond))
	_, _, js := connect(t, procs[survivor])
	stream, err := js.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		_, events := foldFromStream(ctx, t, stream, id)
		assertCausesOnce(t, id, events)
	}
	checkSKUHistory(ctx, t, js, []string{"K9"})
	// Orders the dead node appended but could not acknowledge are in the
	// stream too, and finish as well: in the end nothing stays reserved.
	eventually(t, 60*time.Second, "no stock left reserved", func() (bool, string) {
		v, err := live.GetStock(ctx, "K9")
		if err != nil {
			return false, err.Error()
		}
		if v.Reserved == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("%d reserved; holders: %s", v.Reserved, holders(ctx, t, js, live))
	})
}

// holders lists the orders holding K9 reservations, with their status.
func holders(ctx context.Context, t *testing.T, js natsjs.JetStream, cl *client.Client) string {
	events, err := skuHistory(ctx, js, "K9")
	if err != nil {
		return err.Error()
	}
	held := map[string]bool{}
	for _, e := range events {
		switch e.Type {
		case inventory.EventReserved:
			held[e.OrderID] = true
		case inventory.EventCommitted, inventory.EventReleased:
			delete(held, e.OrderID)
		}
	}
	var out []string
	for id := range held {
		o, err := cl.GetOrder(ctx, id)
		out = append(out, fmt.Sprintf("%s %s/%s %v", id, o.Status, o.Reservation, err))
	}
	return strings.Join(out, "; ")
}

// startCluster starts three `oms serve` processes routed to each other.
func startCluster(t *testing.T) ([]*process, error) {
	var ports []int
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	procs := make([]*process, 3)
	errs := make([]error, 3)
	dataDirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	creds := t.TempDir() // the nodes of one cluster share their credentials
	var wg sync.WaitGroup
	for i := range 3 {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = launch(t, dataDirs[i], "--node-name", fmt.Sprint("p", i+1),
				"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--routes", strings.Join(routes, ","),
				"--credentials-dir", creds)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range procs {
			if p != nil {
				_ = p.cmd.Process.Kill()
			}
		}
		return nil, err
	}
	return procs, nil
}
