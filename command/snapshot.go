package command

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// History is where the actors' states are read from.
type History struct {
	Orders natsjs.Stream
	SKUs   natsjs.Stream
}

// RebuildSnapshots drops every actor snapshot and writes a fresh one for
// each order and SKU from its events. Live actors are unaffected; a
// snapshot never replaces a newer one. progress hears how many orders and
// SKUs are done of how many.
func (c *Commands) RebuildSnapshots(ctx context.Context, node string, progress func(done, total uint64)) (api.RebuildReport, error) {
	began := time.Now()
	rep := api.RebuildReport{Node: node, What: api.RebuildSnapshots}
	for _, k := range []store.Kind{store.KindOrder, store.KindSKU} {
		if err := c.d.DB.DropSnapshots(k); err != nil {
			return rep, err
		}
	}
	sources := []struct {
		stream   natsjs.Stream
		prefix   string
		kind     store.Kind
		count    *int
		subjects map[string]uint64
	}{
		{stream: c.d.History.Orders, prefix: jetstream.OrderEventsPrefix, kind: store.KindOrder, count: &rep.Orders},
		{stream: c.d.History.SKUs, prefix: jetstream.SKUEventsPrefix, kind: store.KindSKU, count: &rep.SKUs},
	}
	var total uint64
	for i := range sources {
		info, err := sources[i].stream.Info(ctx, natsjs.WithSubjectFilter(sources[i].prefix+"*"))
		if err != nil {
			return rep, err
		}
		sources[i].subjects = info.State.Subjects
		total += uint64(len(info.State.Subjects))
	}
	var done atomic.Uint64
	step := func() { progress(done.Add(1), total) }
	for _, src := range sources {
		events, err := c.snapshotSubjects(ctx, src.stream, src.prefix, src.kind, src.subjects, step)
		rep.Events += events
		*src.count = len(src.subjects)
		if err != nil {
			return rep, err
		}
	}
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// snapshotSubjects folds each subject's events and writes the snapshots in
// batches, a few subjects at a time.
func (c *Commands) snapshotSubjects(ctx context.Context, stream natsjs.Stream, prefix string, kind store.Kind, subjects map[string]uint64, step func()) (uint64, error) {
	jobs := make(chan string)
	var mu sync.Mutex
	var batch []store.Snapshot
	var events uint64
	var firstErr error
	flush := func(force bool) {
		if len(batch) >= 256 || (force && len(batch) > 0) {
			if err := c.d.DB.SaveSnapshots(batch); err != nil && firstErr == nil {
				firstErr = err
			}
			batch = batch[:0]
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for subject := range jobs {
				snap, count, err := foldSubject(ctx, stream, strings.TrimPrefix(subject, prefix), kind)
				step()
				mu.Lock()
				events += count
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && count > 0 {
					batch = append(batch, snap)
					flush(false)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for subject := range subjects {
		select {
		case jobs <- subject:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	flush(true)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return events, firstErr
}

// foldSubject is one key's snapshot, folded from its whole history.
func foldSubject(ctx context.Context, stream natsjs.Stream, key string, kind store.Kind) (store.Snapshot, uint64, error) {
	var state any
	var last, n uint64
	var err error
	switch kind {
	case store.KindOrder:
		var s order.State
		err = actors.OrderHistory(ctx, stream, key, 0, func(seq uint64, e order.Event) error {
			s, last, n = order.Evolve(s, e), seq, n+1
			return nil
		})
		s.Order.Version = last
		state = s
	case store.KindSKU:
		var s inventory.Stock
		err = actors.SKUHistory(ctx, stream, key, 0, func(seq uint64, e inventory.Event) error {
			s, last, n = inventory.Evolve(s, e), seq, n+1
			return nil
		})
		s.Version = last
		state = s
	}
	if err != nil || n == 0 {
		return store.Snapshot{}, n, err
	}
	data, err := json.Marshal(state)
	if err != nil {
		return store.Snapshot{}, 0, err
	}
	return store.Snapshot{Kind: kind, Key: key, Seq: last, Data: data}, n, nil
}
