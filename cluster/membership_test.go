package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/jetstream"
)

// failingWatch is a real bucket whose first watches fail, as they do while
// the bucket elects a leader after a restart.
type failingWatch struct {
	natsjs.KeyValue
	fails atomic.Int32
}

func (f *failingWatch) WatchAll(ctx context.Context, opts ...natsjs.WatchOpt) (natsjs.KeyWatcher, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("watch: context deadline exceeded")
	}
	return f.KeyValue.WatchAll(ctx, opts...)
}

// TestMembershipWatchIsTriedAgain: a node whose membership watch cannot be
// opened at first keeps trying, and then heartbeats and sees itself; it
// used to log the error and never heartbeat, so it owned no partition.
func TestMembershipWatchIsTriedAgain(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	kv, err := env.JS.CreateKeyValue(env.Ctx, natsjs.KeyValueConfig{Bucket: membersBucket})
	if err != nil {
		t.Fatal(err)
	}
	watch := &failingWatch{KeyValue: kv}
	watch.fails.Store(3)
	o := Options{Self: "n1", Heartbeat: 50 * time.Millisecond, MemberTimeout: time.Second,
		Backoff: jetstream.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))}
	m := newKVMembership(watch, Member{Name: "n1"}, o, func() {})
	ctx, cancel := context.WithCancel(env.Ctx)
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx, ready) }()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("membership not ready after its watch failed three times")
	}
	if left := watch.fails.Load(); left >= 0 {
		t.Fatalf("%d failures left: the watch was not tried again", left+1)
	}
	poll.Until(t, 10*time.Second, "heartbeat stored", func() (bool, string) {
		_, err := kv.Get(env.Ctx, "n1")
		return err == nil, "no heartbeat"
	})
	if live := m.live(); len(live) != 1 || live[0] != "n1" {
		t.Fatalf("live members %v, want [n1]", live)
	}
}
