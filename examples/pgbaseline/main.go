// Command pgbaseline is the yardstick issue 12 measured oms against: a
// plain PostgreSQL order table driven through an order's lifecycle with
// one row-locking transaction per step, the way an order module on a
// relational database works. With --list-indexes, --events and --outbox it
// also does what oms does for every order besides: the lists' indexes, a
// history row per step, provider requests through a transactional outbox.
// It runs the same load as `oms bench` (orders of one line over a
// catalogue of SKUs, a share of payments refused, placements in flight or
// at a rate) and prints the same figures, so the two can be alternated in
// one session on one machine. CPU per order counts this process and every
// postgres process on the machine (so no other PostgreSQL should be busy
// there), as `oms bench` counts its whole process (server, node,
// simulators, load generator).
//
// It is a separate module so that oms itself does not depend on a
// PostgreSQL driver. --throwaway (which run.sh passes) starts a server of
// its own for the run.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oms-project/oms/bench/latency"
)

type options struct {
	dsn            string
	orders, skus   int
	concurrency    int
	conns          int
	rate           float64
	paymentFailure float64
	indexes        bool
	events, outbox bool
	// pattern is how a step is written: "statement" (one conditional
	// statement, its own transaction: one round trip) or "lock" (SELECT …
	// FOR UPDATE, then the updates, between BEGIN and COMMIT).
	pattern string
}

// result names its fields as `oms bench --json` does where they mean the
// same thing.
type result struct {
	Orders                int     `json:"orders"`
	Rate                  float64 `json:"rate"`
	Concurrency           int     `json:"concurrency"`
	Conns                 int     `json:"conns"`
	SKUs                  int     `json:"skus"`
	ListIndexes           bool    `json:"listIndexes"`
	Events                bool    `json:"events"`
	Outbox                bool    `json:"outbox"`
	Pattern               string  `json:"pattern"`
	Acked                 int     `json:"acked"`
	Completed             int64   `json:"completed"`
	Cancelled             int64   `json:"cancelled"`
	Errors                int64   `json:"errors"`
	Seconds               float64 `json:"seconds"`
	PlacedPerSecond       float64 `json:"placedPerSecond"`
	CompletedPerSecond    float64 `json:"completedPerSecond"`
	AckP50                float64 `json:"ackP50Ms"`
	AckP99                float64 `json:"ackP99Ms"`
	AckMax                float64 `json:"ackMaxMs"`
	DoneP50               float64 `json:"completedP50Ms"`
	DoneP99               float64 `json:"completedP99Ms"`
	CPUSecondsPer1000     float64 `json:"cpuSecondsPer1000Orders"`
	ServerCPUSecondsPer1k float64 `json:"serverCpuSecondsPer1000Orders"`
	ClientCPUSecondsPer1k float64 `json:"clientCpuSecondsPer1000Orders"`
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (its tables are dropped and created)")
	flag.IntVar(&o.orders, "orders", 10_000, "orders to place")
	flag.IntVar(&o.skus, "skus", 1000, "SKUs in the catalogue")
	flag.IntVar(&o.concurrency, "concurrency", 256, "placements in flight (as oms bench), and as many provider callbacks")
	flag.IntVar(&o.conns, "conns", 8, "connections in the pool (PostgreSQL runs a process per connection; on 2 cores 8 did best)")
	flag.Float64Var(&o.rate, "rate", 0, "orders per second (0: as fast as --concurrency allows)")
	flag.Float64Var(&o.paymentFailure, "payment-failure", 0.05, "share of payments refused (the order is cancelled and its stock released)")
	flag.BoolVar(&o.indexes, "list-indexes", false, "keep the indexes oms's read model keeps for its lists (user, status, SKU, source, creation time)")
	flag.BoolVar(&o.events, "events", false, "keep each order's history, a row per step, as oms's order stream does")
	flag.BoolVar(&o.outbox, "outbox", false, "store the payment and delivery requests in the step's transaction, and delete each when its provider takes it (a transactional outbox)")
	flag.StringVar(&o.pattern, "pattern", "statement", `how each step is written: "statement" (one conditional statement, its own transaction) or "lock" (SELECT … FOR UPDATE, then the updates, in one transaction)`)
	throwaway := flag.Bool("throwaway", false, "start a PostgreSQL server of its own for the run (a temporary directory, 127.0.0.1, a random port, synchronous_commit=off) and remove it after; --dsn is then not used")
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := start(ctx, o, *throwaway)
	cancel()
	if err != nil {
		log.Fatalf("pgbaseline: %v", err)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("completed %d, cancelled %d, errors %d in %.1fs: %.0f completed/s, %.0f placed/s\n",
		res.Completed, res.Cancelled, res.Errors, res.Seconds, res.CompletedPerSecond, res.PlacedPerSecond)
	fmt.Printf("place→ack p50 %.2f ms, p99 %.2f ms, max %.2f ms; place→completed p50 %.0f ms, p99 %.0f ms\n",
		res.AckP50, res.AckP99, res.AckMax, res.DoneP50, res.DoneP99)
	fmt.Printf("CPU per 1000 orders: %.3f s (postgres %.3f, this client %.3f)\n",
		res.CPUSecondsPer1000, res.ServerCPUSecondsPer1k, res.ClientCPUSecondsPer1k)
}

// start runs the load with o, on a throw-away server of its own if asked:
// the server is removed however the run ends.
func start(ctx context.Context, o options, throwaway bool) (result, error) {
	if throwaway {
		dsn, stop, err := startThrowaway(ctx)
		if err != nil {
			return result{}, err
		}
		defer stop()
		o.dsn = dsn
	}
	if err := o.validate(); err != nil {
		return result{}, err
	}
	return run(ctx, o)
}

func (o options) validate() error {
	switch {
	case o.dsn == "":
		return errors.New("--dsn (or DATABASE_URL) is required")
	case o.orders < 1, o.skus < 1, o.concurrency < 1, o.conns < 1:
		return errors.New("--orders, --skus, --concurrency and --conns must be at least 1")
	case o.rate < 0:
		return errors.New("--rate must not be negative")
	case o.paymentFailure < 0 || o.paymentFailure > 1:
		return errors.New("--payment-failure must be between 0 and 1")
	case o.pattern != "statement" && o.pattern != "lock":
		return fmt.Errorf("--pattern %q: want statement or lock", o.pattern)
	}
	return nil
}

const schema = `
DROP TABLE IF EXISTS orders, skus, order_events, outbox;
CREATE TABLE skus (sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL);
CREATE TABLE orders (
	id uuid PRIMARY KEY, user_id text NOT NULL, status text NOT NULL, sku text NOT NULL, quantity int NOT NULL,
	unit_price bigint NOT NULL, currency text NOT NULL, source text NOT NULL, country text NOT NULL,
	postal_code text NOT NULL, address text NOT NULL, phone text NOT NULL,
	created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE order_events (order_id uuid NOT NULL, seq int NOT NULL, type text NOT NULL, at timestamptz NOT NULL,
	body jsonb NOT NULL, PRIMARY KEY (order_id, seq));
CREATE TABLE outbox (id bigserial PRIMARY KEY, subject text NOT NULL, body jsonb NOT NULL);`

const listIndexes = `
CREATE INDEX ON orders (user_id, created_at);
CREATE INDEX ON orders (status, created_at);
CREATE INDEX ON orders (sku, created_at);
CREATE INDEX ON orders (source, created_at);
CREATE INDEX ON orders (created_at);`

// errRefused is a step the order's status does not allow (it never
// happens in this load; it is what the row lock protects).
var errRefused = errors.New("transition refused")

func run(ctx context.Context, o options) (result, error) {
	cfg, err := pgxpool.ParseConfig(o.dsn)
	if err != nil {
		return result{}, err
	}
	cfg.MaxConns, cfg.MinConns = int32(o.conns), int32(o.conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	ddl := schema
	if o.indexes {
		ddl += listIndexes
	}
	if _, err := pool.Exec(ctx, ddl); err != nil {
		return result{}, fmt.Errorf("schema: %w", err)
	}
	skus := make([]string, o.skus)
	for i := range skus {
		skus[i] = fmt.Sprintf("BENCH-%05d", i)
	}
	// Enough stock that no order is refused, as in oms bench.
	if _, err := pool.Exec(ctx, `INSERT INTO skus SELECT unnest($1::text[]), $2, 0`, skus, o.orders); err != nil {
		return result{}, fmt.Errorf("stock: %w", err)
	}
	// Every connection open before the clock starts, as oms bench's node
	// is running before it places.
	conns := make([]*pgxpool.Conn, 0, o.conns)
	for range o.conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return result{}, err
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}

	var (
		mu                         sync.Mutex
		acks                       = make([]time.Duration, 0, o.orders)
		dones                      = make([]time.Duration, 0, o.orders)
		completed, cancelled, errs atomic.Int64
	)
	type placed struct {
		id      string
		payment int64 // its payment request's outbox row
		at      time.Time
	}
	l := load{pool: pool, pattern: o.pattern, events: o.events, outbox: o.outbox}
	callbacks := make(chan placed, o.concurrency)
	providers := workers(o.concurrency, 2, func(r *mathrand.Rand) {
		for p := range callbacks {
			paid := r.Float64() >= o.paymentFailure
			if err := l.lifecycle(ctx, p.id, p.payment, paid); err != nil {
				errs.Add(1)
				log.Printf("order %s: %v", p.id, err)
				continue
			}
			mu.Lock()
			dones = append(dones, time.Since(p.at))
			mu.Unlock()
			if paid {
				completed.Add(1)
			} else {
				cancelled.Add(1)
			}
		}
	})

	cpu0, err := cpuSeconds()
	if err != nil {
		return result{}, err
	}
	began := time.Now()
	jobs := make(chan int)
	placers := workers(o.concurrency, 1, func(r *mathrand.Rand) {
		for i := range jobs {
			if o.rate > 0 {
				time.Sleep(time.Until(began.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))))
			}
			id, sku := newID(), skus[r.IntN(len(skus))]
			user := "user-" + strconv.Itoa(r.IntN(100_000))
			t0 := time.Now()
			payment, err := l.place(ctx, id, user, sku)
			if err != nil {
				errs.Add(1)
				log.Printf("place: %v", err)
				continue
			}
			mu.Lock()
			acks = append(acks, time.Since(t0))
			mu.Unlock()
			callbacks <- placed{id: id, payment: payment, at: t0}
		}
	})
	for i := range o.orders {
		jobs <- i
	}
	close(jobs)
	placers()
	close(callbacks)
	providers()
	elapsed := time.Since(began)
	cpu1, err := cpuSeconds()
	if err != nil {
		return result{}, err
	}

	if err := check(ctx, pool, o, completed.Load(), cancelled.Load()); err != nil {
		return result{}, err
	}
	res := result{Orders: o.orders, Rate: o.rate, Concurrency: o.concurrency, Conns: o.conns, SKUs: o.skus,
		ListIndexes: o.indexes, Events: o.events, Outbox: o.outbox, Pattern: o.pattern, Acked: len(acks), Completed: completed.Load(), Cancelled: cancelled.Load(),
		Errors: errs.Load(), Seconds: elapsed.Seconds()}
	res.PlacedPerSecond = float64(res.Acked) / elapsed.Seconds()
	res.CompletedPerSecond = float64(res.Completed) / elapsed.Seconds()
	res.AckP50, res.AckP99, res.AckMax = latency.Summary(acks)
	res.DoneP50, res.DoneP99, _ = latency.Summary(dones)
	per1k := func(s float64) float64 { return s / float64(max(res.Acked, 1)) * 1000 }
	res.ServerCPUSecondsPer1k, res.ClientCPUSecondsPer1k = per1k(cpu1.server-cpu0.server), per1k(cpu1.client-cpu0.client)
	res.CPUSecondsPer1000 = res.ServerCPUSecondsPer1k + res.ClientCPUSecondsPer1k
	return res, nil
}

// load is how the orders are written: the pattern of a step, and what is
// written besides the order's row.
type load struct {
	pool    *pgxpool.Pool
	pattern string
	// events keeps each order's history, a row per step (what oms's order
	// stream is); outbox stores the payment and delivery requests in the
	// step's transaction, and each is deleted when a provider takes it
	// (the transactional outbox, and the relay's delete).
	events, outbox bool
}

const insertOrder = `INSERT INTO orders (id, user_id, status, sku, quantity, unit_price, currency, source,
	country, postal_code, address, phone, created_at, updated_at)`

const orderValues = `'received', $3, 1, 1999, 'EUR', 'web', 'DE', '10115', 'Invalidenstr. 117', '+49 30 1234567', now(), now()`

// place reserves the stock and stores the order in one transaction: the
// SKU's row lock is what keeps two placements from selling the last unit
// twice. It returns the payment request's outbox row (0 without one).
func (l load) place(ctx context.Context, id, user, sku string) (int64, error) {
	refused := fmt.Errorf("%s: %w (out of stock)", sku, errRefused)
	args := []any{id, user, sku}
	if l.pattern == "statement" {
		q := `WITH held AS (
			UPDATE skus SET reserved = reserved + 1 WHERE sku = $3 AND on_hand - reserved >= 1 RETURNING sku),
			o AS (` + insertOrder + ` SELECT $1, $2, ` + orderValues + ` FROM held ON CONFLICT (id) DO NOTHING RETURNING id)`
		q, args = l.also(q, args, id, 1, "order.placed", "payments.requests.")
		return l.run(ctx, q, args, refused)
	}
	var outboxID int64 // set by the transaction, so read after it
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var available int64
		if err := tx.QueryRow(ctx, `SELECT on_hand - reserved FROM skus WHERE sku = $1 FOR UPDATE`, sku).Scan(&available); err != nil {
			return err
		}
		if available < 1 {
			return refused
		}
		if _, err := tx.Exec(ctx, `UPDATE skus SET reserved = reserved + 1 WHERE sku = $1`, sku); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertOrder+` VALUES ($1, $2, `+orderValues+`) ON CONFLICT (id) DO NOTHING`, args...); err != nil {
			return err
		}
		var err error
		outboxID, err = l.record(ctx, tx, id, 1, "order.placed", "payments.requests.")
		return err
	})
	return outboxID, err
}

// lifecycle runs what the providers' callbacks cause, one transaction
// each: the payment (stock committed, or released and the order
// cancelled), then shipped, delivered and completed. A provider first
// takes its request from the outbox.
func (l load) lifecycle(ctx context.Context, id string, payment int64, paid bool) error {
	if err := l.take(ctx, payment); err != nil {
		return err
	}
	if !paid {
		_, err := l.step(ctx, id, 2, "received", "cancelled", `reserved = reserved - o.quantity`, "")
		return err
	}
	delivery, err := l.step(ctx, id, 2, "received", "paid",
		`on_hand = on_hand - o.quantity, reserved = reserved - o.quantity`, "delivery.requests.")
	if err != nil {
		return err
	}
	if err := l.take(ctx, delivery); err != nil {
		return err
	}
	for i, s := range [][2]string{{"paid", "in_transit"}, {"in_transit", "delivered"}, {"delivered", "completed"}} {
		if _, err := l.step(ctx, id, 3+i, s[0], s[1], "", ""); err != nil {
			return err
		}
	}
	return nil
}

// step moves the order from one status to the next under its row lock
// and, when stock is not empty, sets it on the order's SKU in the same
// transaction (o is the order's row); request names the outbox subject of
// a provider request it causes, if any.
func (l load) step(ctx context.Context, id string, seq int, from, to, stock, request string) (int64, error) {
	refused := fmt.Errorf("%s → %s: %w", from, to, errRefused)
	if l.pattern == "statement" {
		q := `WITH o AS (UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = $3
			RETURNING id, sku, quantity)`
		if stock != "" {
			q += `, s AS (UPDATE skus SET ` + stock + ` FROM o WHERE skus.sku = o.sku)`
		}
		q, args := l.also(q, []any{id, to, from}, id, seq, to, request)
		return l.run(ctx, q, args, refused)
	}
	var outboxID int64 // set by the transaction, so read after it
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1 FOR UPDATE`, id).Scan(&status); err != nil {
			return err
		}
		if status != from {
			return refused
		}
		if stock != "" {
			if _, err := tx.Exec(ctx, `UPDATE skus SET `+stock+` FROM orders o WHERE o.id = $1 AND skus.sku = o.sku`, id); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET status = $2, updated_at = now() WHERE id = $1`, id, to); err != nil {
			return err
		}
		var err error
		outboxID, err = l.record(ctx, tx, id, seq, to, request)
		return err
	})
	return outboxID, err
}

// also adds to a statement whose CTE o holds the row it changed what
// l writes besides (the event, the request), in the same statement, and
// ends it with the count of rows changed and the request's outbox row.
func (l load) also(q string, args []any, id string, seq int, kind, request string) (string, []any) {
	if l.events {
		args = append(args, seq, kind, eventBody(id, kind))
		n := len(args)
		q += fmt.Sprintf(`, e AS (INSERT INTO order_events (order_id, seq, type, at, body)
			SELECT id, $%d, $%d, now(), $%d FROM o)`, n-2, n-1, n)
	}
	if l.outbox && request != "" {
		args = append(args, request, requestBody(id, request))
		n := len(args)
		q += fmt.Sprintf(`, x AS (INSERT INTO outbox (subject, body) SELECT $%d || id, $%d FROM o RETURNING id)
			SELECT (SELECT count(*) FROM o), COALESCE((SELECT max(id) FROM x), 0)`, n-1, n)
		return q, args
	}
	return q + ` SELECT (SELECT count(*) FROM o), 0::bigint`, args
}

// run executes a statement made by also: one round trip, its own
// transaction.
func (l load) run(ctx context.Context, q string, args []any, refused error) (int64, error) {
	var changed, outboxID int64
	if err := l.pool.QueryRow(ctx, q, args...).Scan(&changed, &outboxID); err != nil {
		return 0, err
	}
	if changed == 0 {
		return 0, refused
	}
	return outboxID, nil
}

// record writes, in the lock pattern's transaction, what l writes
// besides the order's row.
func (l load) record(ctx context.Context, tx pgx.Tx, id string, seq int, kind, request string) (int64, error) {
	if l.events {
		if _, err := tx.Exec(ctx, `INSERT INTO order_events (order_id, seq, type, at, body) VALUES ($1, $2, $3, now(), $4)`,
			id, seq, kind, eventBody(id, kind)); err != nil {
			return 0, err
		}
	}
	var outboxID int64
	if l.outbox && request != "" {
		err := tx.QueryRow(ctx, `INSERT INTO outbox (subject, body) VALUES ($1 || $2, $3) RETURNING id`,
			request, id, requestBody(id, request)).Scan(&outboxID)
		return outboxID, err
	}
	return 0, nil
}

// take is a provider taking its request: the relay deletes it from the
// outbox (one row; none without an outbox).
func (l load) take(ctx context.Context, outboxID int64) error {
	if outboxID == 0 {
		return nil
	}
	tag, err := l.pool.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, outboxID)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("outbox row %d: taken twice", outboxID)
	}
	return err
}

// eventBody and requestBody are about the size of oms's order events and
// provider requests.
func eventBody(id, kind string) string {
	return fmt.Sprintf(`{"id":"%s-%s","type":%q,"v":1,"orderId":%q,"by":"bench","causeId":"cmd:%s",`+
		`"correlationId":"corr-%s","status":%q,"reservation":"held","payment":{"provider":"sim","amount":1999,"currency":"EUR"}}`,
		id[:8], kind, kind, id, id, id, kind)
}

func requestBody(id, subject string) string {
	return fmt.Sprintf(`{"type":"collect","orderId":%q,"user":"user-1","amount":1999,"currency":"EUR","paymentMethod":"card",`+
		`"destination":{"country":"DE","postalCode":"10115","address":"Invalidenstr. 117"},"subject":%q}`, id, subject)
}

// workers starts n goroutines running work, each with a random source of
// its own (stream tells the pools apart), and returns what waits for them.
func workers(n int, stream uint64, work func(r *mathrand.Rand)) (wait func()) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(mathrand.New(mathrand.NewPCG(uint64(w), stream)))
		}()
	}
	return wg.Wait
}

// check holds the run to what it claims: no stock held after the last
// order, every completed order's unit gone from stock, each order in the
// status its last step left, its history complete (five steps for a
// completed order, two for a cancelled one) and every request taken.
func check(ctx context.Context, pool *pgxpool.Pool, o options, completed, cancelled int64) error {
	orders := o.orders
	var events, requests int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM order_events), (SELECT count(*) FROM outbox)`).
		Scan(&events, &requests); err != nil {
		return err
	}
	if want := 5*completed + 2*cancelled; o.events && events != want || !o.events && events != 0 {
		return fmt.Errorf("inconsistent: %d events stored (want %d)", events, want)
	}
	if requests != 0 {
		return fmt.Errorf("inconsistent: %d requests left in the outbox", requests)
	}
	var reserved, onHand, nCompleted, nCancelled int64
	var skus int64
	if err := pool.QueryRow(ctx, `SELECT count(*), sum(reserved), sum(on_hand) FROM skus`).Scan(&skus, &reserved, &onHand); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'completed'),
		count(*) FILTER (WHERE status = 'cancelled') FROM orders`).Scan(&nCompleted, &nCancelled); err != nil {
		return err
	}
	if reserved != 0 || onHand != skus*int64(orders)-completed || nCompleted != completed || nCancelled != cancelled {
		return fmt.Errorf("inconsistent: %d reserved, %d on hand (want %d), %d completed and %d cancelled rows (want %d, %d)",
			reserved, onHand, skus*int64(orders)-completed, nCompleted, nCancelled, completed, cancelled)
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type cpu struct{ server, client float64 }

// cpuSeconds reads this process's CPU time and that of every process named
// postgres: the server's backends (one per connection) and its writers,
// and, through the postmaster's count of its children that have ended,
// any autovacuum worker that came and went.
func cpuSeconds() (cpu, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpu{}, err
	}
	c := cpu{client: float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9}
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return cpu{}, err
	}
	const ticks = 100 // USER_HZ, which Linux fixes at 100 for /proc
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process has exited
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || s[open+1:closing] != "postgres" {
			continue
		}
		f := strings.Fields(s[closing+1:])
		// After the command: state is field 3 of proc_pid_stat(5); utime,
		// stime, cutime and cstime are 14 to 17.
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseFloat(v, 64)
			c.server += n / ticks
		}
	}
	return c, nil
}
