package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oms-project/oms/internal/poll"
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

// startPostgres starts a throw-away server in a temporary directory on a
// random loopback port, as run.sh does, and returns its connection string.
func startPostgres(t *testing.T) string {
	t.Helper()
	initdb, postgres := pgBinary(t, "initdb"), pgBinary(t, "postgres")
	dir := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: it runs as postgres, who
		// must reach the directory.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := command(initdb, "--auth=trust", "--username=postgres", "-D", data).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	srv := command(postgres, "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "synchronous_commit=off")
	log, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt) // fast shutdown
		_ = srv.Wait()
		_ = log.Close()
	})
	dsn := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	poll.Until(t, 30*time.Second, "postgres ready", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		pool, err := pgxpool.New(ctx, dsn)
		if err == nil {
			err = pool.Ping(ctx)
			pool.Close()
		}
		if err == nil {
			return true, ""
		}
		b, _ := os.ReadFile(log.Name())
		return false, fmt.Sprintf("%v\n%s", err, b)
	})
	return dsn
}

// pgBinary finds a PostgreSQL server program on PATH or where Debian's
// postgresql package puts it.
func pgBinary(t *testing.T, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1]
	}
	t.Fatalf("%s not found: install PostgreSQL (Debian: apt-get install postgresql)", name)
	return ""
}
