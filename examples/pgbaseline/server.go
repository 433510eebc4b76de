package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// startThrowaway starts a PostgreSQL server of its own for one run and
// returns its connection string and how to stop it (which removes it).
// Its data is in a new temporary directory, it listens on 127.0.0.1 at a
// random port, and commits with synchronous_commit=off: acknowledged
// before their WAL is flushed, the durability class of JetStream's
// default, which flushes in the background. --throwaway and the tests
// both use it.
func startThrowaway(ctx context.Context) (dsn string, stop func(), err error) {
	initdb, err := program("initdb")
	if err != nil {
		return "", nil, err
	}
	postgres, err := program("postgres")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "pgbaseline-")
	if err != nil {
		return "", nil, err
	}
	removeDir := func() { _ = os.RemoveAll(dir) }
	cred, err := serverUser(dir)
	if err != nil {
		removeDir()
		return "", nil, err
	}
	command := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		// A process group of its own: a Ctrl-C at the terminal reaches
		// only this program, which then stops the server in order.
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := command(initdb, "--auth=trust", "--username=postgres", "-D", data).CombinedOutput(); err != nil {
		removeDir()
		return "", nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		removeDir()
		return "", nil, err
	}
	srv := command(postgres, "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "synchronous_commit=off", "-c", "max_connections=300", "-c", "shared_buffers=256MB")
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		removeDir()
		return "", nil, err
	}
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		_ = logFile.Close()
		removeDir()
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	stop = func() {
		_ = srv.Process.Signal(os.Interrupt) // PostgreSQL's fast shutdown
		select {
		case <-exited:
		case <-time.After(stopWait):
			_ = srv.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		removeDir()
	}
	dsn = "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	if err := ready(ctx, dsn, 30*time.Second); err != nil {
		b, _ := os.ReadFile(logPath)
		stop()
		return "", nil, fmt.Errorf("postgres not ready: %w\n%s", err, b)
	}
	return dsn, stop, nil
}

// stopWait bounds a fast shutdown: a server still up after it is killed.
const stopWait = 10 * time.Second

// program finds a PostgreSQL server program on PATH or where Debian's
// postgresql package puts it (off PATH).
func program(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1], nil
	}
	return "", fmt.Errorf("%s not found: install PostgreSQL (Debian: apt-get install postgresql)", name)
}

// serverUser is who the server runs as: this process's user, or, since
// PostgreSQL refuses to run as root, the postgres user, who is then given
// dir and must be able to reach it.
func serverUser(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for d := dir; d != filepath.Clean(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort is a loopback port nothing listens on now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// ready waits until the server at dsn answers, for at most within.
func ready(ctx context.Context, dsn string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		pool, err := pgxpool.New(pctx, dsn)
		if err == nil {
			err = pool.Ping(pctx)
			pool.Close()
		}
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
		}
	}
}
