package node_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/order"
)

// browser starts Debian's chromium, headless, for the test, and collects
// what the pages report as errors (exceptions and console.error).
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("this test drives a real browser: install Debian's chromium (apt-get install chromium); .ci/run does")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, desc))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, "console.error: "+strings.Join(args, " "))
			}
		}
	}
	if err := chromedp.Listen(ctx, listen); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// screenshot saves the page as an artifact: in $OMS_ARTIFACTS when set
// (CI keeps it; `make screenshots` writes the README's), else in the
// test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("OMS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", filepath.Join(dir, name))
}

// textOf reads the text of the element a CSS selector names ("" if none).
func textOf(ctx context.Context, sel string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`)?.textContent ?? "").trim()`))
}

// count counts the elements a CSS selector names.
func count(ctx context.Context, sel string) int {
	n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
	return n
}

// TestPagesInABrowser drives Debian's chromium. The operator dashboard
// loads with no console error and shows what /metrics says once orders
// have flowed (orders by status, placements), an order searched opens its
// timeline; the customer's tracking page changes its status live as the
// payment and the deliveries arrive. Both are saved as screenshots.
func TestPagesInABrowser(t *testing.T) {
	ctx, problems := browser(t)
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("WEB-1", 100)
	item := order.Item{SKU: "WEB-1", Quantity: 1, UnitPrice: 2500}
	var done []order.Order
	for i := range 4 {
		o := h.place(placeReq(fmt.Sprint("page-", i), item))
		h.waitOrder(o.ID, func(o order.Order) bool { return o.Reservation == order.ReservationHeld }, "held")
		done = append(done, o)
	}
	for i, o := range done[:3] {
		h.pay(o, fmt.Sprint("page-pay-", i), order.PaymentSucceeded, o.Total)
		h.waitOrder(o.ID, func(o order.Order) bool { return o.Status == order.StatusPaid }, "paid")
		h.ship(o, fmt.Sprint("page-ship-", i), order.DeliveryInTransit)
		h.ship(o, fmt.Sprint("page-dlv-", i), order.DeliveryDelivered)
		h.waitOrder(o.ID, func(o order.Order) bool { return o.Status == order.StatusCompleted }, "completed")
	}
	h.waitProjected(t)

	// The dashboard, with a support token (it may open timelines too).
	support := h.as(endpoint.Internal, "sam", auth.RoleSupport)
	if err := chromedp.Do(ctx, chromedp.Navigate(support.base+"/#token="+support.token)); err != nil {
		t.Fatal(err)
	}
	fs := scrape(t, support)
	want := map[string]string{}
	for _, s := range order.Statuses {
		v, _ := sample(fs, "oms_orders", "status", string(s))
		want["#orders-"+string(s)] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	placed, _ := sample(fs, "oms_operation_duration_seconds", "operation", "orders_place", "outcome", "ok")
	want["#placed-total"] = strconv.FormatFloat(placed, 'f', 0, 64)
	if want["#orders-order_completed"] != "3" || want["#orders-order_received"] != "1" || want["#placed-total"] != "4" {
		t.Fatalf("/metrics before the page: %v", want)
	}
	// and the API says the same.
	st, err := h.c.Status(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range order.Statuses {
		if got := strconv.FormatInt(st.Orders[string(s)], 10); got != want["#orders-"+string(s)] {
			t.Fatalf("oms.status says %s %s, /metrics %s", s, got, want["#orders-"+string(s)])
		}
	}
	eventually(t, 30*time.Second, "the dashboard shows /metrics' figures", func() (bool, string) {
		var got []string
		ok := true
		for sel, w := range want {
			s, err := textOf(ctx, sel)
			if err != nil || s != w {
				ok = false
			}
			got = append(got, sel+"="+s)
		}
		return ok, strings.Join(got, " ")
	})
	if conn, _ := textOf(ctx, "#conn"); conn != "live" {
		t.Fatalf("dashboard connection %q", conn)
	}
	// Every partition is drawn, owned by this node.
	if cells := count(ctx, "#partitions div"); cells != 8 {
		t.Fatalf("partition cells %d", cells)
	}
	// Search an order, as a person would: type it, press the button.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("order-id").value = `+strconv.Quote(done[0].ID)+
		`; document.querySelector("#search button").click(); true`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the searched order's timeline", func() (bool, string) {
		s, _ := textOf(ctx, "#timeline")
		return count(ctx, "#timeline li.entry") == 5 && strings.Contains(s, "order.completed") && strings.Contains(s, "caused by provider"), s
	})
	screenshot(t, ctx, "dashboard.png")

	// The tracking page of alice's own order, following it live.
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	status, _, body := alice.do(http.MethodPost, "/v1/orders", newOrder("WEB-1"), "Idempotency-Key", "track-1")
	o := decodeOrder(t, status, body)
	if err := chromedp.Do(ctx, chromedp.Navigate(alice.base+"/track/"+o.ID+"#token="+alice.token)); err != nil {
		t.Fatal(err)
	}
	showing := func(want string) {
		t.Helper()
		eventually(t, 20*time.Second, "the tracking page shows "+want, func() (bool, string) {
			s, err := textOf(ctx, "#status")
			return err == nil && s == want, s
		})
	}
	showing("Received")
	h.waitOrder(o.ID, func(o order.Order) bool { return o.Reservation == order.ReservationHeld }, "held")
	h.pay(o, "track-pay", order.PaymentSucceeded, o.Total)
	showing("Paid")
	h.ship(o, "track-ship", order.DeliveryInTransit)
	showing("On its way")
	if s, _ := textOf(ctx, "#detail"); !strings.Contains(s, "TS-1") {
		t.Errorf("tracking detail %q, want the tracking number", s)
	}
	screenshot(t, ctx, "tracking.png")
	h.ship(o, "track-dlv", order.DeliveryDelivered)
	showing("Delivered")
	// Another customer's token shows nothing of it.
	bob := h.as(endpoint.External, "bob", auth.RoleCustomer)
	if err := chromedp.Do(ctx, chromedp.Navigate(bob.base+"/track/"+o.ID+"#token="+bob.token)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob sees no order", func() (bool, string) {
		s, _ := textOf(ctx, "#error")
		return strings.Contains(s, "not found"), s
	})
	// The refused read of bob is shown by the page, not thrown.
	if p := problems(); len(p) > 0 {
		t.Fatalf("the pages reported errors:\n%s", strings.Join(p, "\n"))
	}
}
