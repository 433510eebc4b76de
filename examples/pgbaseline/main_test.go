package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestEveryPatternLeavesTheStockExact runs the load on a real PostgreSQL
// server, both ways of writing a step, as a plain table and with what oms
// keeps besides (list indexes, history, outbox): run ends with check, so
// a pattern that loses a release, commits twice, skips an event or leaves
// a request behind fails it.
func TestEveryPatternLeavesTheStockExact(t *testing.T) {
	dsn := startPostgres(t)
	for _, pattern := range []string{"statement", "lock"} {
		for _, all := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/like-oms=%v", pattern, all), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := run(ctx, options{dsn: dsn, orders: 300, skus: 7, concurrency: 16, conns: 4,
					paymentFailure: 0.2, indexes: all, events: all, outbox: all, pattern: pattern})
				if err != nil {
					t.Fatal(err)
				}
				if res.Errors != 0 || res.Completed+res.Cancelled != 300 || res.Cancelled == 0 || res.Completed == 0 {
					t.Fatalf("completed %d, cancelled %d, errors %d of 300", res.Completed, res.Cancelled, res.Errors)
				}
				if res.ServerCPUSecondsPer1k <= 0 {
					t.Fatalf("no postgres CPU counted: %+v", res)
				}
			})
		}
	}
}

// TestCheckFindsWhatIsWrong is check failing when it should: a unit still
// held, an event missing, a request not taken.
func TestCheckFindsWhatIsWrong(t *testing.T) {
	dsn := startPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := options{dsn: dsn, orders: 20, skus: 2, concurrency: 4, conns: 2, indexes: true, events: true, outbox: true,
		pattern: "statement"}
	res, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, c := range []struct{ damage, undo, want string }{
		{`UPDATE skus SET reserved = 1 WHERE sku = 'BENCH-00000'`, `UPDATE skus SET reserved = 0`, "1 reserved"},
		{`INSERT INTO outbox (subject, body) VALUES ('payments.requests.x', '{}')`, `DELETE FROM outbox`, "requests left"},
		{`DELETE FROM order_events WHERE ctid = (SELECT min(ctid) FROM order_events)`, ``, "events stored"},
	} {
		if _, err := pool.Exec(ctx, c.damage); err != nil {
			t.Fatal(err)
		}
		err := check(ctx, pool, o, res.Completed, res.Cancelled)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("check after %s: %v, want %q", c.damage, err, c.want)
		}
		if c.undo != "" {
			if _, err := pool.Exec(ctx, c.undo); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// startPostgres starts a throw-away server for the test, as --throwaway
// does for a run, and returns its connection string.
func startPostgres(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, stop, err := startThrowaway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return dsn
}
