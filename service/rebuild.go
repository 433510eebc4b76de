package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// RebuildReadModel drops the read model and projects the order stream
// again from its first event, returning when it has caught up with the
// stream as it was when the rebuild began.
func (n *Node) RebuildReadModel(ctx context.Context) (api.RebuildReport, error) {
	began := time.Now()
	info, err := n.orderStream.Info(ctx)
	if err != nil {
		return api.RebuildReport{}, err
	}
	n.proj.stop()
	if err := n.db.DropReadModel(); err != nil {
		return api.RebuildReport{}, err
	}
	if err := n.proj.start(ctx); err != nil {
		return api.RebuildReport{}, err
	}
	if err := n.proj.waitFor(ctx, info.State.LastSeq); err != nil {
		return api.RebuildReport{}, err
	}
	orders, err := n.db.CountOrders()
	if err != nil {
		return api.RebuildReport{}, err
	}
	return api.RebuildReport{Node: n.cfg.NodeName, What: "readmodel", Events: info.State.Msgs, Orders: orders,
		Seconds: time.Since(began).Seconds()}, nil
}

// RebuildSnapshots drops every actor snapshot and writes a fresh one for
// each order and SKU from its events. Live actors are unaffected; a
// snapshot never replaces a newer one.
func (n *Node) RebuildSnapshots(ctx context.Context) (api.RebuildReport, error) {
	began := time.Now()
	rep := api.RebuildReport{Node: n.cfg.NodeName, What: "snapshots"}
	for _, k := range []store.Kind{store.KindOrder, store.KindSKU} {
		if err := n.db.DropSnapshots(k); err != nil {
			return rep, err
		}
	}
	skuStream, err := n.js.Stream(ctx, jetstream.StreamSKUs)
	if err != nil {
		return rep, err
	}
	type source struct {
		stream natsjs.Stream
		prefix string
		kind   store.Kind
		count  *int
	}
	for _, src := range []source{
		{n.orderStream, jetstream.OrderEventsPrefix, store.KindOrder, &rep.Orders},
		{skuStream, jetstream.SKUEventsPrefix, store.KindSKU, &rep.SKUs},
	} {
		info, err := src.stream.Info(ctx, natsjs.WithSubjectFilter(src.prefix+"*"))
		if err != nil {
			return rep, err
		}
		events, err := n.snapshotSubjects(ctx, src.stream, src.prefix, src.kind, info.State.Subjects)
		rep.Events += events
		*src.count = len(info.State.Subjects)
		if err != nil {
			return rep, err
		}
	}
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// snapshotSubjects folds each subject's events and writes the snapshots in
// batches, a few subjects at a time.
func (n *Node) snapshotSubjects(ctx context.Context, stream natsjs.Stream, prefix string, kind store.Kind, subjects map[string]uint64) (uint64, error) {
	jobs := make(chan string)
	var mu sync.Mutex
	var batch []store.Snapshot
	var events uint64
	var firstErr error
	flush := func(force bool) {
		if len(batch) >= 256 || (force && len(batch) > 0) {
			if err := n.db.SaveSnapshots(batch); err != nil && firstErr == nil {
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
				snap, count, err := foldSubject(ctx, stream, prefix, kind, subject)
				mu.Lock()
				events += count
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					batch = append(batch, snap)
					flush(false)
				}
				mu.Unlock()
			}
		}()
	}
	for subject := range subjects {
		select {
		case jobs <- subject:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	flush(true)
	return events, firstErr
}

func foldSubject(ctx context.Context, stream natsjs.Stream, prefix string, kind store.Kind, subject string) (store.Snapshot, uint64, error) {
	msgs, err := jetstream.Tail(ctx, stream, subject, 0)
	if err != nil || len(msgs) == 0 {
		return store.Snapshot{}, 0, err
	}
	key := strings.TrimPrefix(subject, prefix)
	last := msgs[len(msgs)-1].Sequence
	var state any
	switch kind {
	case store.KindOrder:
		var s order.State
		for _, m := range msgs {
			var e order.Event
			if err := json.Unmarshal(m.Data, &e); err != nil {
				return store.Snapshot{}, 0, fmt.Errorf("%s at %d: %w", subject, m.Sequence, err)
			}
			s = order.Evolve(s, e)
		}
		s.Order.Version = last
		state = s
	case store.KindSKU:
		var s inventory.Stock
		for _, m := range msgs {
			events, err := inventory.DecodeEvents(m.Data)
			if err != nil {
				return store.Snapshot{}, 0, fmt.Errorf("%s at %d: %w", subject, m.Sequence, err)
			}
			for _, e := range events {
				s = inventory.Evolve(s, e)
			}
		}
		s.Version = last
		state = s
	}
	data, err := json.Marshal(state)
	if err != nil {
		return store.Snapshot{}, 0, err
	}
	return store.Snapshot{Kind: kind, Key: key, Seq: last, Data: data}, uint64(len(msgs)), nil
}
