package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestShutdownIsBoundedDuringARebuild: `oms rebuild` reports its result;
// a node sent SIGTERM while it rebuilds its read model stops (the rebuild
// cancelled) within its shutdown timeout, and the job says it was
// cancelled.
func TestShutdownIsBoundedDuringARebuild(t *testing.T) {
	p := startProcess(t, t.TempDir(), "--shutdown-timeout", "15s")
	_, cl, js := connect(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 20_000
	at := time.Now().UTC()
	for i := range n {
		id := uuid.NewString()
		e := order.Event{ID: order.EventID(id, "place"), Type: order.EventPlaced, V: order.EventVersion, OrderID: id, At: at,
			By: "gen", CauseID: "place", Status: order.StatusReceived, Reservation: order.ReservationPending,
			Placed: &order.Placed{User: fmt.Sprint("u", i%100), Items: []order.Item{{SKU: "S", Quantity: 1, UnitPrice: 1}},
				Currency: "EUR", Total: 1, BasketSize: 1}}
		data, _ := json.Marshal(e)
		if _, err := js.PublishAsync(jetstream.OrderEventsPrefix+id, data); err != nil {
			t.Fatal(err)
		}
		if i%2000 == 1999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	t0 := time.Now()
	out := omsCLI(t, p, "rebuild", "readmodel")
	t.Logf("rebuild: %s in %s", strings.TrimSpace(out), time.Since(t0))
	if !strings.Contains(out, "rebuilt the readmodel from the streams") {
		t.Fatalf("oms rebuild: %q", out)
	}
	job, err := cl.StartRebuild(ctx, api.RebuildReadModel)
	if err != nil || job.State != api.JobRunning {
		t.Fatalf("second rebuild: %+v %v", job, err)
	}
	assertBootMarker(t, p.dataDir, "of a running node", true)
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the node exited with %v after SIGTERM:\n%s", err, p.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the node did not stop within 20s of SIGTERM while rebuilding:\n%s", p.output())
	}
	t.Logf("stopped %s after SIGTERM, in the middle of a rebuild", time.Since(began).Round(time.Millisecond))
	// A clean stop syncs the bbolt file and removes its boot marker.
	assertBootMarker(t, p.dataDir, "after a clean stop", false)
	// Started again, the node tells how the interrupted job ended.
	q := startProcess(t, p.dataDir)
	_, cl2, _ := connect(t, q)
	got, err := cl2.Job(ctx, job.ID)
	if err != nil || (got.State != api.JobCancelled && got.State != api.JobDone) {
		t.Fatalf("the interrupted job: %+v %v", got, err)
	}
}

// TestWatchWaitsForChanges: `oms order watch` keeps waiting on an order
// that does not change (it used to exit with "nats: timeout" after 5 s),
// and ends at Ctrl-C.
func TestWatchWaitsForChanges(t *testing.T) {
	p := startProcess(t, t.TempDir())
	_, cl, _ := connect(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.SetStock(ctx, "W-1", 1); err != nil {
		t.Fatal(err)
	}
	o, err := cl.PlaceOrder(ctx, api.PlaceOrder{User: "u", NewOrder: api.NewOrder{Currency: "EUR",
		Items:       []order.Item{{SKU: "W-1", Quantity: 1, UnitPrice: 100}},
		Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(omsBinary, "--server", p.url, "--nkey", p.nkey("admin"), "order", "watch", o.ID)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("watch exited on its own (%v):\n%s", err, out.String())
	case <-time.After(8 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("watch after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end at Ctrl-C")
	}
	if !strings.Contains(out.String(), "order.placed") {
		t.Fatalf("watch printed %q", out.String())
	}
}
