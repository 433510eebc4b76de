package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// generate appends n orders' events straight to the order stream: each is
// placed, and some are then paid, completed or cancelled. It returns how
// many events it wrote.
func generate(t testing.TB, ctx context.Context, js natsjs.JetStream, r *rand.Rand, n int, base time.Time) int {
	t.Helper()
	users := 40
	events := 0
	// The window is drained every 1,000 publishes: on a loaded CI machine the
	// client's default pending limit would otherwise stall and fail the test.
	drain := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("async publishes did not complete")
		}
	}
	pub := func(e order.Event) {
		data, _ := json.Marshal(e)
		if _, err := js.PublishAsync(jetstream.OrderEventsPrefix+e.OrderID, data); err != nil {
			t.Fatal(err)
		}
		events++
		if events%1000 == 0 {
			drain()
		}
	}
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), i)
		at := base.Add(time.Duration(r.IntN(2*365*24)) * time.Hour).Add(time.Duration(i) * time.Microsecond)
		items := []order.Item{{SKU: fmt.Sprint("SKU-", r.IntN(30)), Quantity: int64(1 + r.IntN(3)), UnitPrice: int64(100 + r.IntN(900))}}
		if r.IntN(3) == 0 {
			items = append(items, order.Item{SKU: "SKU-X", Quantity: 1, UnitPrice: 50})
		}
		var total, units int64
		for _, it := range items {
			total += it.Quantity * it.UnitPrice
			units += it.Quantity
		}
		var promos []string
		if r.IntN(4) == 0 {
			promos = []string{[]string{"BF26", "XMAS", "WELCOME"}[r.IntN(3)]}
		}
		ev := func(typ order.EventType, cause string, st order.Status, res order.Reservation) order.Event {
			return order.Event{ID: order.EventID(id, cause), Type: typ, V: 1, OrderID: id, At: at, By: "gen",
				CauseID: cause, Status: st, Reservation: res}
		}
		p := ev(order.EventPlaced, "place", order.StatusReceived, order.ReservationPending)
		p.Placed = &order.Placed{User: fmt.Sprint("user-", r.IntN(users)), Items: items, Currency: "EUR",
			Source: []string{"web", "app"}[r.IntN(2)], PromotionCodes: promos, Total: total, BasketSize: units,
			Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}}
		pub(p)
		switch r.IntN(4) {
		case 0: // stays received
		case 1: // cancelled before payment
			c := ev(order.EventCancelled, "cancel", order.StatusCancelled, order.ReservationReleased)
			c.Cancel = &order.Cancellation{Reason: order.CancelCustomerRequest, ReleaseStock: true}
			pub(c)
		default:
			pay := ev(order.EventPaid, "pay", order.StatusPaid, order.ReservationCommitted)
			pay.Payment = &order.PaymentInformation{Amount: total, Currency: "EUR", Status: "succeeded"}
			pub(pay)
			if r.IntN(2) == 0 {
				d := ev(order.EventCompleted, "deliver", order.StatusCompleted, order.ReservationCommitted)
				d.Delivery = &order.DeliveryUpdate{Provider: "x"}
				pub(d)
			} else if r.IntN(4) == 0 {
				c := ev(order.EventCancelled, "cancel", order.StatusCancelled, order.ReservationReleased)
				c.Cancel = &order.Cancellation{Reason: order.CancelCustomerRequest, RefundDue: total, ReleaseStock: true}
				pub(c)
			}
		}
	}
	drain()
	return events
}

// foldStream reads every order event and folds each order: the brute-force
// truth the read model is checked against.
func foldStream(t testing.TB, ctx context.Context, js natsjs.JetStream) map[string]order.Order {
	t.Helper()
	out := map[string]order.Order{}
	_, err := jetstream.Replay(ctx, js, jetstream.ReplayOptions{Stream: jetstream.StreamOrders}, func(m natsjs.Msg, md *natsjs.MsgMetadata) error {
		var e order.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			return err
		}
		s := order.Evolve(order.State{Order: out[e.OrderID]}, e)
		s.Order.Version = md.Sequence.Stream
		out[e.OrderID] = s.Order
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func queryNode(t *testing.T) *harness {
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	return startNode(t, cfg)
}

func (h *harness) waitProjected(t testing.TB) {
	t.Helper()
	eventually(t, 60*time.Second, "read model caught up", func() (bool, string) {
		st, err := h.c.Status(h.ctx)
		return err == nil && st.ReadModel.Stream > 0 && st.ReadModel.Lag == 0, fmt.Sprintf("%+v %v", st.ReadModel, err)
	})
}

func (h *harness) listAll(t testing.TB, f order.Filter) []order.Order {
	t.Helper()
	var all []order.Order
	for {
		page, err := h.c.ListOrders(h.ctx, f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		all = append(all, page.Orders...)
		if page.Next == "" {
			return all
		}
		f.Cursor = page.Next
	}
}

func orderIDs(os []order.Order) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

// TestListAgreesWithStreamScan generates tens of thousands of orders and
// checks every filter, paged, against a brute-force scan of the stream.
func TestListAgreesWithStreamScan(t *testing.T) {
	h := queryNode(t)
	r := rand.New(rand.NewPCG(7, 11))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	generate(t, h.ctx, h.js, r, 20_000, base)
	h.waitProjected(t)
	truth := foldStream(t, h.ctx, h.js)
	if len(truth) != 20_000 {
		t.Fatalf("%d orders in the stream", len(truth))
	}
	filters := []order.Filter{
		{User: "user-7", Limit: 7},
		{Status: "order_completed", Limit: 500},
		{Status: "order_cancelled", Source: "app", Limit: 100},
		{PromotionCode: "XMAS", Limit: 50},
		{SKU: "SKU-X", Status: "order_received", Limit: 200},
		{SKU: "SKU-3", From: base.Add(90 * 24 * time.Hour), To: base.Add(400 * 24 * time.Hour), Limit: 33},
		{User: "user-1", PromotionCode: "BF26", Status: "order_paid"},
		{From: base.Add(100 * 24 * time.Hour), To: base.Add(101 * 24 * time.Hour), Limit: 5},
	}
	for _, f := range filters {
		var want []order.Order
		for _, o := range truth {
			if f.Matches(o) {
				want = append(want, o)
			}
		}
		slices.SortFunc(want, func(a, b order.Order) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return cmpString(a.ID, b.ID)
		})
		got := h.listAll(t, f)
		if !slices.Equal(orderIDs(got), orderIDs(want)) {
			t.Fatalf("filter %+v: got %d orders, want %d", f, len(got), len(want))
		}
		for i := range got {
			if got[i].Status != want[i].Status || got[i].Version != want[i].Version || got[i].Total != want[i].Total {
				t.Fatalf("filter %+v: order %s differs: %+v vs %+v", f, got[i].ID, got[i], want[i])
			}
		}
		if len(want) == 0 {
			t.Fatalf("filter %+v matches nothing; the test data should exercise it", f)
		}
	}

	// Paging while new orders arrive: every order that existed when paging
	// began is returned exactly once.
	before := h.listAll(t, order.Filter{Source: "web", Limit: 500})
	f := order.Filter{Source: "web", Limit: 250}
	seen := map[string]int{}
	pages := 0
	for {
		page, err := h.c.ListOrders(h.ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			seen[o.ID]++
		}
		if pages%3 == 0 {
			generate(t, h.ctx, h.js, r, 200, base.Add(3*365*24*time.Hour))
		}
		pages++
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	for _, o := range before {
		if seen[o.ID] != 1 {
			t.Fatalf("order %s seen %d times while paging", o.ID, seen[o.ID])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("order %s seen %d times", id, n)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestAnalyticsAndRebuild checks the incremental analytics against a
// recomputation from the stream, then rebuilds the read model and checks
// it equals the live one.
func TestAnalyticsAndRebuild(t *testing.T) {
	h := queryNode(t)
	r := rand.New(rand.NewPCG(3, 5))
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	generate(t, h.ctx, h.js, r, 5000, base)
	h.waitProjected(t)
	truth := foldStream(t, h.ctx, h.js)

	type agg struct{ orders, paid, cancelled, completed, units, revenue int64 }
	years, promos := map[string]*agg{}, map[string]*agg{}
	for _, o := range truth {
		keys := []*agg{}
		y := o.CreatedAt.UTC().Format("2006")
		if years[y] == nil {
			years[y] = &agg{}
		}
		keys = append(keys, years[y])
		for _, p := range o.PromotionCodes {
			if promos[p] == nil {
				promos[p] = &agg{}
			}
			keys = append(keys, promos[p])
		}
		for _, a := range keys {
			a.orders++
			a.units += o.BasketSize
			if o.PaymentInformation.Status == "succeeded" {
				a.paid++
				a.revenue += o.Total - o.RefundDue
			}
			switch o.Status {
			case order.StatusCancelled:
				a.cancelled++
			case order.StatusCompleted:
				a.completed++
			}
		}
	}
	var sum struct {
		Years []api.PeriodAnalytics `json:"years"`
	}
	if err := h.c.Request(h.ctx, api.SubjectAnalyticsSummary, api.Summary{}, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Years) != len(years) {
		t.Fatalf("%d years, want %d", len(sum.Years), len(years))
	}
	check := func(name string, got api.Analytics, want *agg) {
		if want == nil || got.Orders != want.orders || got.Paid != want.paid || got.Cancelled != want.cancelled ||
			got.Completed != want.completed || got.Units != want.units || got.Revenue["EUR"] != want.revenue {
			t.Fatalf("%s: got %+v, want %+v", name, got, want)
		}
	}
	for _, y := range sum.Years {
		check("year "+y.Period, y.Analytics, years[y.Period])
	}
	var pr struct {
		Promotions []api.PromotionAnalytics `json:"promotions"`
	}
	if err := h.c.Request(h.ctx, api.SubjectAnalyticsPromotions, struct{}{}, &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.Promotions) != len(promos) {
		t.Fatalf("%d promotions, want %d", len(pr.Promotions), len(promos))
	}
	for _, p := range pr.Promotions {
		check("promotion "+p.Code, p.Analytics, promos[p.Code])
	}

	// A rebuilt read model equals the live one.
	snapshot := func() (any, any, any) {
		var s1, s2 any
		_ = h.c.Request(h.ctx, api.SubjectAnalyticsSummary, api.Summary{Year: 2026}, &s1)
		_ = h.c.Request(h.ctx, api.SubjectAnalyticsPromotions, struct{}{}, &s2)
		return h.listAll(t, order.Filter{Limit: 500}), s1, s2
	}
	l1, a1, p1 := snapshot()
	st1, _ := h.c.Status(h.ctx)
	rep, err := h.c.Rebuild(h.ctx, "readmodel")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orders != 5000 || rep.Events != st1.ReadModel.Stream {
		t.Fatalf("rebuild report %+v", rep)
	}
	l2, a2, p2 := snapshot()
	st2, _ := h.c.Status(h.ctx)
	if !reflect.DeepEqual(l1, l2) || !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(st1.Orders, st2.Orders) {
		t.Fatal("rebuilt read model differs from the live one")
	}
}

// TestReadModelOfAnEarlierLayoutIsRebuilt: a node whose bbolt file holds a
// read model written by a version that kept documents by order ID drops it
// on start and rebuilds it from the stream: afterwards every order is
// listed and found by ID as before, nothing counted twice.
func TestReadModelOfAnEarlierLayoutIsRebuilt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	h := startNode(t, cfg)
	r := rand.New(rand.NewPCG(13, 17))
	generate(t, h.ctx, h.js, r, 300, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	h.waitProjected(t)
	truth := foldStream(t, h.ctx, h.js)
	before := orderIDs(h.listAll(t, order.Filter{Limit: 100}))
	counts, err := h.c.Status(h.ctx)
	if err != nil || len(before) != len(truth) {
		t.Fatalf("before: %d listed of %d, %v", len(before), len(truth), err)
	}
	h.stop()

	// What an earlier version left: the same read model with its documents
	// keyed by ID in rm_orders, and no rm_docs or rm_ids.
	db, err := bolt.Open(filepath.Join(cfg.DataDir, cfg.NodeName+".bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket([]byte("rm_orders"))
		if err != nil {
			return err
		}
		if err := tx.Bucket([]byte("rm_docs")).ForEach(func(k, v []byte) error {
			return old.Put(k[8:], v) // the key after the creation time is the ID
		}); err != nil {
			return err
		}
		for _, name := range []string{"rm_docs", "rm_ids"} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	h = startNode(t, cfg)
	h.waitProjected(t)
	if after := orderIDs(h.listAll(t, order.Filter{Limit: 100})); !slices.Equal(after, before) {
		t.Fatalf("after the rebuild %d orders listed, before %d", len(after), len(before))
	}
	again, err := h.c.Status(h.ctx)
	if err != nil || !reflect.DeepEqual(again.Orders, counts.Orders) {
		t.Fatalf("status counts %v after, %v before (%v)", again.Orders, counts.Orders, err)
	}
	for _, id := range before[:10] {
		got, err := h.c.GetOrder(h.ctx, id)
		if want := truth[id]; err != nil || got.Status != want.Status || got.Version != want.Version {
			t.Fatalf("order %s: %s v%d, want %s v%d (%v)", id, got.Status, got.Version, want.Status, want.Version, err)
		}
	}
}

// TestStoreOfABootThatWentDownIsRebuilt: the machine loses power. The
// order stream comes back without its last events (JetStream fsyncs every
// two minutes), and the bbolt file, written without fsyncs, comes back
// torn: its meta pages were never written. The boot marker left next to
// it names the lost boot, so the node drops the file, where it could not
// open it otherwise, and rebuilds it: it then lists what the stream holds,
// including the new orders whose events reuse the lost sequences, and none
// of the lost.
func TestStoreOfABootThatWentDownIsRebuilt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	projectedThenStopped(t, cfg, 1, 100)
	// What the disk holds of the streams at their last fsync.
	backToSynced := savedStreams(t, cfg)

	projectedThenStopped(t, cfg, 2, 100)
	// The power goes: the streams come back as last synced, and the bbolt
	// file's marker names the boot that went down.
	backToSynced()
	file := filepath.Join(cfg.DataDir, cfg.NodeName+".bolt")
	torn, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = torn.WriteAt(make([]byte, 2*os.Getpagesize()), 0) // both meta pages: bbolt refuses the file
	if cerr := torn.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if err := os.WriteFile(file+".boot", []byte("a boot that went down"), 0o600); err != nil {
		t.Fatal(err)
	}

	startedThenListed(t, cfg, 3, 60)
}

// TestStoreOfWipedStreamsIsRebuilt: the JetStream store is deleted (or
// restored from an older backup) and the bbolt file kept. The streams are
// created anew, so the node drops what the file derived from the old ones
// and lists only the new orders, whose events reuse the old sequences.
func TestStoreOfWipedStreamsIsRebuilt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	projectedThenStopped(t, cfg, 1, 100)
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		t.Fatal(err)
	}

	startedThenListed(t, cfg, 2, 60)
}

// TestStoreOfARestoredCopyIsRebuilt: the JetStream store is restored from
// an older backup (the streams keep their creation times) and appended to
// by a node with a new bbolt file; then the first file comes back. The
// stream holds more events than that file's read model applied, so only
// the event at the sequence of its last one tells that the read model was
// built from events the stream lost: the node drops it and lists exactly
// what the stream holds.
func TestStoreOfARestoredCopyIsRebuilt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	early := projectedThenStopped(t, cfg, 1, 100)
	restoreBackup := savedStreams(t, cfg)
	applied := early + projectedThenStopped(t, cfg, 2, 100)

	// The backup comes back; a node with a file of its own appends to it.
	restoreBackup()
	file, kept := filepath.Join(cfg.DataDir, cfg.NodeName+".bolt"), filepath.Join(t.TempDir(), "kept.bolt")
	if err := os.Rename(file, kept); err != nil {
		t.Fatal(err)
	}
	if held := early + projectedThenStopped(t, cfg, 3, 200); held < applied {
		t.Fatalf("the stream holds %d events, fewer than the %d the kept file applied: the length check alone would catch it", held, applied)
	}
	if err := os.Rename(kept, file); err != nil {
		t.Fatal(err)
	}

	startedThenListed(t, cfg, 4, 0)
}

// startedThenListed starts a node on cfg, appends n more orders (their IDs
// drawn from seed) and checks that it lists exactly what the stream holds.
func startedThenListed(t *testing.T, cfg config.Config, seed uint64, n int) {
	t.Helper()
	h := startNode(t, cfg)
	generate(t, h.ctx, h.js, rand.New(rand.NewPCG(seed, seed)), n, generatedFrom)
	h.listsWhatTheStreamHolds(t)
}

// savedStreams copies the node's JetStream store as it is now, and returns
// what puts the copy back in its place, as a restore from a backup (or a
// disk after a power loss) would.
func savedStreams(t *testing.T, cfg config.Config) (restore func()) {
	t.Helper()
	streams, saved := filepath.Join(cfg.DataDir, "jetstream"), filepath.Join(t.TempDir(), "streams")
	if err := os.CopyFS(saved, os.DirFS(streams)); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.RemoveAll(streams); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(streams, os.DirFS(saved)); err != nil {
			t.Fatal(err)
		}
	}
}

// generatedFrom is the earliest creation time of the orders the store
// tests generate.
var generatedFrom = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// projectedThenStopped starts a node on cfg, appends n orders (their IDs
// drawn from seed), waits for the read model to project them and stops
// the node. It returns how many events it appended.
func projectedThenStopped(t *testing.T, cfg config.Config, seed uint64, n int) int {
	t.Helper()
	h := startNode(t, cfg)
	events := generate(t, h.ctx, h.js, rand.New(rand.NewPCG(seed, seed)), n, generatedFrom)
	h.waitProjected(t)
	h.stop()
	return events
}

// listsWhatTheStreamHolds waits for the read model to catch up, then
// checks it lists every order of the stream, as the stream says, and no
// other.
func (h *harness) listsWhatTheStreamHolds(t *testing.T) {
	t.Helper()
	h.waitProjected(t)
	truth := foldStream(t, h.ctx, h.js)
	listed := h.listAll(t, order.Filter{Limit: 100})
	if len(listed) != len(truth) {
		t.Fatalf("%d orders listed, the stream holds %d", len(listed), len(truth))
	}
	for _, o := range listed {
		if want, ok := truth[o.ID]; !ok || o.Status != want.Status || o.Version != want.Version {
			t.Fatalf("order %s listed %s v%d; the stream says %s v%d (held: %v)", o.ID, o.Status, o.Version, want.Status, want.Version, ok)
		}
	}
}
