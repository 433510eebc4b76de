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

// RestartOptions says what RunRestart stores, and where.
type RestartOptions struct {
	Orders int
	// Lifecycle stores each order's whole life, delivered in five events,
	// instead of its placement alone.
	Lifecycle bool
	// DataDir keeps the data; empty, a temporary directory is removed.
	DataDir string
}

// RestartResult is what RunRestart measured.
type RestartResult struct {
	Revision      string  `json:"revision"`
	StoredOrders  int     `json:"storedOrders"`
	StoredEvents  int     `json:"storedEvents"`
	WriteSeconds  float64 `json:"writeSeconds"`
	ReadySeconds  float64 `json:"readySeconds"`
	FirstCommandS float64 `json:"firstCommandSeconds"`
	// CaughtUpS is when the read model had applied every stored event and
	// the probe's change after them: they were written straight to
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

// RunRestart stores o.Orders orders (written straight to the order stream,
// as if taken earlier), stops the node, and measures how long a restart
// takes until the node is ready, until it has answered a command on one of
// the stored orders (which activates that order from the stream), and until
// its read model has caught up on them; then what the heap keeps.
//
// progress, if set, hears the read model's catch-up on a live line.
func RunRestart(ctx context.Context, o RestartOptions, log *slog.Logger, progress io.Writer) (RestartResult, error) {
	dir := o.DataDir
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
	probe, stored, err := writeOrders(ctx, cfg, o)
	if err != nil {
		return RestartResult{}, err
	}
	res := RestartResult{Revision: Revision(), StoredOrders: o.Orders, StoredEvents: stored, WriteSeconds: time.Since(began).Seconds()}

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
	// Caught up: every stored event applied, and the probe's change after
	// them (the readiness check would pass within --ready-max-lag).
	for {
		st, err := nd.Status()
		if err == nil && st.ReadModel.StreamError == "" && st.ReadModel.Applied > uint64(res.StoredEvents) &&
			st.ReadModel.Lag == 0 {
			break
		}
		if progress != nil && err == nil {
			fmt.Fprintf(progress, "\r  %5.1fs  read model at event %d of %d   ", time.Since(began).Seconds(),
				st.ReadModel.Applied, st.ReadModel.Stream)
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("read model catching up: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
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

// writeOrders appends a sale's history (see sale) of o.Orders orders with
// async publishes, with only the NATS server and the streams up (no oms
// reacting to them), and returns the probe order's ID and the events stored.
func writeOrders(ctx context.Context, cfg config.Config, o RestartOptions) (string, int, error) {
	srv, err := jetstream.StartServer(jetstream.ServerOptions{Listen: cfg.NatsListen,
		StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Name: cfg.NodeName})
	if err != nil {
		return "", 0, err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv))
	if err != nil {
		return "", 0, err
	}
	defer nc.Close()
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return "", 0, err
	}
	if err := jetstream.Ensure(ctx, js, node.TopologyFor(cfg)); err != nil {
		return "", 0, err
	}
	// Reservations that outlast the bench: the restarted node's expiry
	// sweep would otherwise cancel the sale's older unpaid orders, and
	// time that work instead of the restart's.
	s := newSale(o.Orders, o.Lifecycle, order.Policy{ReservationTTL: 24 * time.Hour, MaxDeliveryAttempts: cfg.MaxDeliveryAttempts})
	stored := 0
	for i := range s.moments() {
		events, err := s.at(i)
		if err != nil {
			return "", stored, err
		}
		for _, e := range events {
			data, err := json.Marshal(e)
			if err != nil {
				return "", stored, err
			}
			if _, err := js.PublishAsync(jetstream.OrderEventsPrefix+e.OrderID, data); err != nil {
				return "", stored, err
			}
			stored++
			// Drained well below the pending limit so a slow disk never
			// stalls the publisher into an error.
			if stored%2048 == 0 {
				if err := published(ctx, js); err != nil {
					return "", stored, err
				}
			}
		}
	}
	return s.probeID, stored, published(ctx, js)
}

// published waits for every publish acknowledgement pending on js.
func published(ctx context.Context, js natsjs.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func apiUpdate(id string, notes *string) api.UpdateOrder {
	return api.UpdateOrder{ID: id, OrderChanges: api.OrderChanges{Notes: notes}, By: "bench"}
}
