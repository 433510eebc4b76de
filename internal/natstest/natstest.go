// Package natstest starts what a test of oms runs on: a real embedded NATS
// server with JetStream in a temporary directory, on a random loopback
// port, with the oms streams created. Every package's tests use it, so
// there is one way to do this.
//
// It may import jetstream, nothing else of oms.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
)

// Env is a running server and a client connected to it.
type Env struct {
	Server *server.Server
	NC     *nats.Conn
	JS     natsjs.JetStream
	// Ctx ends with the test (or after Timeout).
	Ctx context.Context
}

// Options shape an Env; the zero value is a test's usual setup.
type Options struct {
	// Partitions of the inbound stream (default 4).
	Partitions int
	// InProcess connects the client in process, as a node does, instead of
	// over loopback TCP (for benchmarks of the server's own cost).
	InProcess bool
	// Timeout bounds the Env's context (default one minute).
	Timeout time.Duration
}

// Start runs a server for the test and stops it when the test ends.
func Start(tb testing.TB, o Options) *Env {
	tb.Helper()
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	srv, err := jetstream.StartServer(jetstream.ServerOptions{Listen: "127.0.0.1:0", StoreDir: tb.TempDir(), Name: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	var opts []nats.Option
	if o.InProcess {
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncTimeout(o.Timeout))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	tb.Cleanup(cancel)
	if err := jetstream.Ensure(ctx, js, jetstream.Topology{Partitions: o.Partitions, Replicas: 1,
		DuplicateWindow: time.Minute, TransportMaxAge: time.Hour}); err != nil {
		tb.Fatal(err)
	}
	return &Env{Server: srv, NC: nc, JS: js, Ctx: ctx}
}
