package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// clusterConfig is one node of a test cluster; creds is the credentials
// directory the nodes of one cluster share.
func clusterConfig(t *testing.T, creds, name string, port int, peers []int) config.Config {
	cfg := testConfig(t.TempDir())
	cfg.Security.CredentialsDir = creds
	cfg.NodeName = name
	cfg.Partitions = 16
	cfg.Replicas = 3
	cfg.ClusterListen = fmt.Sprintf("127.0.0.1:%d", port)
	for _, p := range peers {
		if p != port {
			cfg.Routes = append(cfg.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	return cfg
}

// startCluster starts nodes at once: each waits for the JetStream cluster.
func startCluster(t *testing.T, cfgs []config.Config) []*harness {
	t.Helper()
	hs := make([]*harness, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() { defer wg.Done(); hs[i] = startNode(t, cfg) }()
	}
	wg.Wait()
	for i, h := range hs {
		if h == nil {
			t.Fatalf("node %d did not start", i)
		}
	}
	return hs
}

func members(h *harness) []string {
	var out []string
	for _, m := range h.node.ClusterStatus().Members {
		out = append(out, m.Name)
	}
	return out
}

// TestClusterSurvivesNodeLossAndJoin runs three nodes on loopback: orders
// are placed through all of them; one is killed mid-flow (its NATS server
// shut down and its oms abandoned, no handover); every acknowledged order
// still reaches a final status, no cause is applied twice, stock is never
// oversold; a fourth node joins and takes partitions while orders flow;
// and two nodes forced to own one order at once are fenced by the server.
func TestClusterSurvivesNodeLossAndJoin(t *testing.T) {
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	ports := freePorts(t, 4)
	creds := t.TempDir()
	hs := startCluster(t, []config.Config{
		clusterConfig(t, creds, "n1", ports[0], ports[:3]), clusterConfig(t, creds, "n2", ports[1], ports[:3]),
		clusterConfig(t, creds, "n3", ports[2], ports[:3]),
	})
	eventually(t, 30*time.Second, "three members", func() (bool, string) {
		m := members(hs[1])
		return slices.Equal(m, []string{"n1", "n2", "n3"}), fmt.Sprint(m)
	})
	// The node to kill is the leader of the order stream, so failover
	// includes a JetStream leader election. n1 names it below.
	info, err := hs[0].js.Stream(hs[0].ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	slices.SortFunc(hs, func(a, b *harness) int {
		switch {
		case a.node.ClusterStatus().Node == leader:
			return -1
		case b.node.ClusterStatus().Node == leader:
			return 1
		}
		return strings.Compare(a.node.ClusterStatus().Node, b.node.ClusterStatus().Node)
	})
	n1, n2, n3 := hs[0], hs[1], hs[2]
	victim := leader
	stopSimulator := n3.startSimulator(config.Simulator{PaymentSuccessRate: 1, MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, SKUs: 1})
	const stock = 150
	n2.setStock("CL-HOT", stock)
	n2.setStock("CL-COLD", 100_000)

	var mu sync.Mutex
	var acked []string
	var placed atomic.Int64
	place := func(ctx context.Context, c *client.Client, key string) {
		items := []order.Item{{SKU: "CL-COLD", Quantity: 1, UnitPrice: 200}}
		if placed.Add(1)%2 == 0 {
			items = append(items, order.Item{SKU: "CL-HOT", Quantity: 1, UnitPrice: 900})
		}
		o, err := c.PlaceOrder(ctx, placeReq(key, items...))
		if err == nil {
			mu.Lock()
			acked = append(acked, o.ID)
			mu.Unlock()
		}
	}
	load := func(ctx context.Context, nodes []*harness, prefix string, n int) {
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n && ctx.Err() == nil; i += 6 {
					place(ctx, nodes[i%len(nodes)].c, fmt.Sprintf("%s-%d", prefix, i))
				}
			}()
		}
		wg.Wait()
	}

	// Load through all three; kill n1 when a third of it is acknowledged.
	phase("cluster formed, stock set")
	var n1Parts []int
	for _, m := range n2.node.ClusterStatus().Members {
		if m.Name == victim {
			n1Parts = m.Partitions
		}
	}
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); load(n2.ctx, []*harness{n1, n2, n3}, "a", 300) }()
	eventually(t, 60*time.Second, "a third placed", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100, fmt.Sprint(len(acked))
	})
	phase("100 orders acknowledged; killing n1")
	n1.nc.Close()
	n1.node.Kill()
	killed := time.Now()
	// Failover: the first command on a partition n1 owned, through a survivor.
	key := ""
	for i := 0; key == ""; i++ {
		k := fmt.Sprint("moved-", i)
		if slices.Contains(n1Parts, jetstream.PartitionOf(order.IDFor("alice", k), 16)) {
			key = k
		}
	}
	for {
		ctx, cancel := context.WithTimeout(n2.ctx, 2*time.Second)
		o, err := n2.c.PlaceOrder(ctx, placeReq(key, order.Item{SKU: "CL-COLD", Quantity: 1, UnitPrice: 200}))
		cancel()
		if err == nil {
			mu.Lock()
			acked = append(acked, o.ID)
			mu.Unlock()
			break
		}
		if time.Since(killed) > 60*time.Second {
			t.Fatalf("no command processed on a moved partition within 60s: %v", err)
		}
	}
	t.Logf("failover (%s led %s): first command on a moved partition processed %s after the kill",
		victim, jetstream.StreamOrders, time.Since(killed).Round(time.Millisecond))
	movedID := acked[len(acked)-1]
	// Its payment comes back through the inbound partition the dead node
	// pulled: applied once a survivor owns and pulls that partition.
	eventually(t, 60*time.Second, "moved order paid", func() (bool, string) {
		o, err := n2.c.GetOrder(n2.ctx, movedID)
		return err == nil && o.Status != order.StatusReceived, fmt.Sprintf("%s %v", o.Status, err)
	})
	t.Logf("failover: provider event on a moved partition applied %s after the kill", time.Since(killed).Round(time.Millisecond))
	<-loadDone
	phase("first load done")
	survivorNames := []string{n2.node.ClusterStatus().Node, n3.node.ClusterStatus().Node}
	slices.Sort(survivorNames)
	eventually(t, 30*time.Second, "the killed node gone from the view", func() (bool, string) {
		m := members(n3)
		return slices.Equal(m, survivorNames), fmt.Sprint(m)
	})

	// A fourth node joins while orders flow, and takes partitions.
	n4 := startNode(t, clusterConfig(t, creds, "n4", ports[3], ports))
	joinDone := make(chan struct{})
	go func() { defer close(joinDone); load(n2.ctx, []*harness{n2, n3, n4}, "b", 150) }()
	eventually(t, 30*time.Second, "n4 owns partitions", func() (bool, string) {
		return len(n4.node.OwnedPartitions()) > 0 && slices.Equal(members(n2), append(slices.Clone(survivorNames), "n4")),
			fmt.Sprint(members(n2), n4.node.OwnedPartitions())
	})
	<-joinDone
	phase("n4 joined, second load done")

	// Every acknowledged order reaches a final status.
	survivors := []*harness{n2, n3, n4}
	mu.Lock()
	ids := slices.Clone(acked)
	mu.Unlock()
	for i, id := range ids {
		h := survivors[i%3]
		deadline := time.Now().Add(90 * time.Second)
		for {
			o, err := h.c.GetOrder(h.ctx, id)
			if err == nil && o.Status.Terminal() {
				break
			}
			if time.Now().After(deadline) {
				var types []string
				for _, e := range n2.events(id) {
					types = append(types, string(e.Type)+"/"+string(e.Status))
				}
				// Where the lifecycle stopped: the requests stored for it,
				// the provider events stored for it.
				p := jetstream.PartitionOf(id, 16)
				stored := fmt.Sprintf("payment requests %d, delivery requests %d, payment events %d, delivery events %d",
					n2.subjectCount(jetstream.StreamOutbox, jetstream.PaymentRequestsPrefix+id),
					n2.subjectCount(jetstream.StreamOutbox, jetstream.DeliveryRequestPrefix+id),
					n2.subjectCount(jetstream.StreamInbound, fmt.Sprintf("%s%d.payments.%s", jetstream.InboundPrefix, p, id)),
					n2.subjectCount(jetstream.StreamInbound, fmt.Sprintf("%s%d.delivery.%s", jetstream.InboundPrefix, p, id)))
				t.Fatalf("order %s (partition %d) not final via %s: %v %s/%s; stream: %v; %s; dead letters %v; members %v",
					id, p, h.node.ClusterStatus().Node, err, o.Status, o.Reservation, types, stored, n2.deadLettersAbout(id), members(h))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	phase("every order final")
	// No cause applied twice.
	for _, id := range ids {
		seen := map[string]bool{}
		for _, e := range n2.events(id) {
			if seen[e.CauseID] {
				t.Fatalf("order %s: cause %s applied twice", id, e.CauseID)
			}
			seen[e.CauseID] = true
		}
	}
	// The hot SKU was never oversold, and what left the shelf went to
	// completed orders. (An order n1 appended but could not acknowledge
	// before it died is processed too: it is in the stream.)
	committed := checkNeverOversold(t, n2, "CL-HOT", stock)
	for _, id := range committed {
		es := n2.events(id)
		if last := es[len(es)-1]; last.Status != order.StatusCompleted {
			t.Fatalf("order %s took hot stock but is %s", id, last.Status)
		}
	}
	if on, r, _ := n2.stock("CL-HOT"); on != int64(stock-len(committed)) || r != 0 {
		t.Fatalf("CL-HOT on hand %d reserved %d, %d units committed of %d", on, r, len(committed), stock)
	}
	t.Logf("%d orders acknowledged, all final; %d hot units sold of %d", len(ids), len(committed), stock)

	// The double owner needs an order that stays unpaid long enough to be
	// cancelled twice; the simulated providers would pay and ship it.
	stopSimulator()
	for round := range 5 {
		forceDoubleOwner(t, n2, n3, fmt.Sprint("double-", round))
	}
}

// forceDoubleOwner makes n2 and n3 both hold an actor for one order and
// cancel it at once. The server fences the second append; the loser
// catches up and decides again on the true state.
func forceDoubleOwner(t *testing.T, n2, n3 *harness, key string) {
	t.Helper()
	o := n2.place(placeReq(key, order.Item{SKU: "CL-COLD", Quantity: 1, UnitPrice: 200}))
	n2.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	// Warm both actors so each holds the same, soon stale, state.
	if _, err := n2.node.OrderLocal(n2.ctx, order.Update{Meta: order.Meta{ID: "warm-2", OrderID: o.ID, At: time.Now(), By: "t"}, Notes: ptr("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n3.node.OrderLocal(n3.ctx, order.Update{Meta: order.Meta{ID: "warm-3", OrderID: o.ID, At: time.Now(), By: "t"}, Notes: ptr("b")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i, h := range []*harness{n2, n3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = h.node.OrderLocal(h.ctx, order.Cancel{Meta: order.Meta{ID: fmt.Sprint("cancel-", i), OrderID: o.ID, At: time.Now(), By: "t"}})
		}()
	}
	wg.Wait()
	es := n2.events(o.ID)
	if countType(es, order.EventCancelled) != 1 {
		t.Fatalf("double owner: %d cancellations in the stream", countType(es, order.EventCancelled))
	}
	ok, refused := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, order.ErrIllegalTransition):
			refused++
		default:
			t.Fatalf("double owner: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("double owner: %d succeeded, %d refused; want one each (%v)", ok, refused, results)
	}
}

func ptr[T any](v T) *T { return &v }

// checkNeverOversold reads the SKU's whole history from the stream and
// returns the orders holding committed units at its end.
func checkNeverOversold(t *testing.T, h *harness, sku string, stock int64) []string {
	t.Helper()
	held := map[string]bool{}
	for _, se := range h.skuEvents(sku) {
		e := se.Event
		if e.OnHand-e.Reserved < 0 || e.OnHand > stock {
			t.Fatalf("%s at %d: onHand %d reserved %d", sku, se.Seq, e.OnHand, e.Reserved)
		}
		switch e.Type {
		case inventory.EventCommitted:
			held[e.OrderID] = true
		case inventory.EventReleased:
			delete(held, e.OrderID)
		}
	}
	out := make([]string, 0, len(held))
	for id := range held {
		out = append(out, id)
	}
	return out
}
