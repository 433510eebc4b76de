package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/internal/heap"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/node"
	"github.com/oms-project/oms/order"
)

// RestartResult is what RunRestart measured.
type RestartResult struct {
	Revision      string  `json:"revision"`
	StoredOrders  int     `json:"storedOrders"`
	WriteSeconds  float64 `json:"writeSeconds"`
	ReadySeconds  float64 `json:"readySeconds"`
	FirstCommandS float64 `json:"firstCommandSeconds"`
	// CaughtUpS is when the read model had caught up on the stored orders
	// (the node's readiness check passed): they were written straight to
	// the stream, so the restarted node projects every one of them, as a
	// node whose read model was wiped does.
	CaughtUpS float64 `json:"readModelCaughtUpSeconds"`
	// LiveHeapMB is the heap a collection finds live then, and
	// ScannableHeapMB the part of it the collector scans for pointers:
	// what the stored orders cost a node's memory (the embedded server
	// indexes every order's subject) and each mark phase, before any
	// order is in flight.
	LiveHeapMB      float64 `json:"liveHeapMB"`
	ScannableHeapMB float64 `json:"scannableHeapMB"`
}

// RunRestart stores n placed orders (written straight to the order stream,
// as if taken earlier), stops the node, and measures how long a restart
// takes until the node is ready, until it has answered a command on one of
// the stored orders (which activates that order from the stream), and until
// its read model has caught up on them; then what the heap keeps.
//
// progress, if set, hears the read model's catch-up on a live line.
func RunRestart(ctx context.Context, n int, dataDir string, log *slog.Logger, progress io.Writer) (RestartResult, error) {
	dir := dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "oms-restart-")
		if err != nil {
			return RestartResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg := config.Default()
	cfg.NodeName, cfg.DataDir, cfg.NatsListen, cfg.Simulate, cfg.StatusInterval = "bench", dir, "127.0.0.1:0", false, 0
	cfg.HTTP.Listen, cfg.HTTP.InternalListen = "", ""
	began := time.Now()
	probe, err := writeOrders(ctx, cfg, n)
	if err != nil {
		return RestartResult{}, err
	}
	res := RestartResult{Revision: Revision(), StoredOrders: n, WriteSeconds: time.Since(began).Seconds()}

	began = time.Now()
	nd, err := node.Start(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	defer nd.Stop()
	res.ReadySeconds = time.Since(began).Seconds()
	admin, err := nd.Credentials().Connect(credentials.UserAdmin)
	if err != nil {
		return res, err
	}
	nc, err := nats.Connect(nd.ClientURL(), admin)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	notes := "restart probe"
	if _, err := client.New(nc).UpdateOrder(ctx, apiUpdate(probe, &notes)); err != nil {
		return res, fmt.Errorf("first command: %w", err)
	}
	res.FirstCommandS = time.Since(began).Seconds()
	for nd.Ready(ctx).Status != "ready" {
		if progress != nil {
			if st, err := nd.Status(); err == nil {
				fmt.Fprintf(progress, "\r  %5.1fs  read model at event %d of %d   ", time.Since(began).Seconds(),
					st.ReadModel.Applied, st.ReadModel.Stream)
			}
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("read model catching up: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	res.CaughtUpS = time.Since(began).Seconds()
	live, scannable := heap.Kept()
	res.LiveHeapMB, res.ScannableHeapMB = heap.MB(live), heap.MB(scannable)
	return res, nil
}

// writeOrders appends n order.placed events with async publishes, with
// only the NATS server and the streams up (no oms reacting to them), and
// returns one of their IDs.
func writeOrders(ctx context.Context, cfg config.Config, n int) (string, error) {
	srv, err := jetstream.StartServer(jetstream.ServerOptions{Listen: cfg.NatsListen,
		StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Name: cfg.NodeName})
	if err != nil {
		return "", err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return "", err
	}
	if err := jetstream.Ensure(ctx, js, node.TopologyFor(cfg)); err != nil {
		return "", err
	}
	// The orders were placed one after the other, a millisecond apart, as
	// in a sale: the read model keys documents and lists by creation time,
	// so orders all placed at one instant would land at random places in
	// its trees, as no real history does.
	start := time.Now().UTC().Add(-time.Duration(n) * time.Millisecond)
	probe := ""
	for i := range n {
		id := uuid.NewString()
		at := start.Add(time.Duration(i) * time.Millisecond)
		if i == n/2 {
			probe = id
		}
		e := order.Event{ID: order.EventID(id, "place"), Type: order.EventPlaced, V: order.EventVersion, OrderID: id,
			At: at, By: "bench", CauseID: "place", CauseHash: "x", Status: order.StatusReceived,
			Reservation: order.ReservationPending, Placed: &order.Placed{User: fmt.Sprint("u", i%10000),
				Items: []order.Item{{SKU: "SKU-1", Quantity: 1, UnitPrice: 1999}}, Currency: "EUR", Source: "web",
				Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "a", PhoneNumber: "+49 30 1234567"},
				Total:       1999, BasketSize: 1, ReservationExpiresAt: at.Add(time.Hour)}}
		data, _ := json.Marshal(e)
		if _, err := js.PublishAsync(jetstream.OrderEventsPrefix+id, data); err != nil {
			return "", err
		}
		// Drained well below the pending limit so a slow disk never stalls
		// the publisher into an error.
		if (i+1)%2048 == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
	return probe, nil
}

func apiUpdate(id string, notes *string) api.UpdateOrder {
	return api.UpdateOrder{ID: id, OrderChanges: api.OrderChanges{Notes: notes}, By: "bench"}
}
