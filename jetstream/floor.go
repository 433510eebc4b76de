package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// FloorsBucket keeps, per durable consumer of a pipeline, the stream
// sequence up to which every message has been acknowledged: where a
// consumer that was lost (a memory consumer after every server restarted,
// one deleted by hand) starts again, instead of from the stream's first
// message (the reactor would then run every past order's effects again) or
// its next one (what was pending would never be handled).
const FloorsBucket = "OMS_INBOUND_FLOORS"

// Floors reads and records acknowledgement floors in FloorsBucket.
type Floors struct{ kv natsjs.KeyValue }

// OpenFloors opens FloorsBucket, creating it with replicas copies if it is
// missing (retrying with b while a cluster forms).
func OpenFloors(ctx context.Context, js natsjs.JetStream, b Backoff, replicas int, waiting func(error)) (*Floors, error) {
	kv, err := OpenBucket(ctx, js, b, natsjs.KeyValueConfig{Bucket: FloorsBucket,
		Description: "oms pipelines' acknowledgement floors", Replicas: replicas, Storage: natsjs.FileStorage}, waiting)
	if err != nil {
		return nil, err
	}
	return &Floors{kv: kv}, nil
}

// Put records key's floor.
func (f *Floors) Put(ctx context.Context, key string, floor uint64) error {
	return f.PutUnsettled(ctx, key, floor, nil)
}

// PutUnsettled records key's floor with the sequences at or below it
// that are not settled yet, as "floor seq seq ...".
func (f *Floors) PutUnsettled(ctx context.Context, key string, floor uint64, unsettled []uint64) error {
	b := strconv.AppendUint(nil, floor, 10)
	for _, seq := range unsettled {
		b = strconv.AppendUint(append(b, ' '), seq, 10)
	}
	_, err := f.kv.Put(ctx, key, b)
	return err
}

// Get returns key's recorded floor, 0 if none was recorded.
func (f *Floors) Get(ctx context.Context, key string) (uint64, error) {
	r, err := f.Recorded(ctx, key)
	return r.Floor, err
}

// Recorded is a floor as recorded: the sequences at or below it not
// settled yet, its revision (0: none was) and when.
type Recorded struct {
	Floor     uint64
	Unsettled []uint64
	Revision  uint64
	At        time.Time
}

// Recorded returns key's recorded floor, for DeleteIf.
func (f *Floors) Recorded(ctx context.Context, key string) (Recorded, error) {
	e, err := f.kv.Get(ctx, key)
	switch {
	case errors.Is(err, natsjs.ErrKeyNotFound):
		return Recorded{}, nil
	case err != nil:
		return Recorded{}, err
	}
	r := Recorded{Revision: e.Revision(), At: e.Created()}
	for i, field := range strings.Fields(string(e.Value())) {
		seq, err := strconv.ParseUint(field, 10, 64)
		switch {
		case err != nil:
			return Recorded{}, fmt.Errorf("floor %s: %w", key, err)
		case i == 0:
			r.Floor = seq
		default:
			r.Unsettled = append(r.Unsettled, seq)
		}
	}
	return r, nil
}

// DeleteIf deletes key's floor if revision still wrote it: one written
// since (its node came back) is kept.
func (f *Floors) DeleteIf(ctx context.Context, key string, revision uint64) error {
	return f.kv.Delete(ctx, key, natsjs.LastRevision(revision))
}

// Keys lists the recorded floors' keys matching filter (a NATS subject
// wildcard, as "reactor.*").
func (f *Floors) Keys(ctx context.Context, filter string) ([]string, error) {
	l, err := f.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() { // closed after the last key, its watcher stopped
		if !slices.Contains(keys, k) { // a key written meanwhile may come twice
			keys = append(keys, k)
		}
	}
	return keys, ctx.Err()
}

// Record writes, every interval until the returned stop is called and
// once more then (a graceful stop hands over an exact floor), the
// acknowledgement floor of each durable consumer of stream that watched
// names (floor key → consumer name), when it has risen. Consumers are
// looked up each time: one deleted and opened again is another handle.
// Any node may record a shared consumer's floor; a lower one written late
// by a slower node only means a few more messages delivered again if the
// consumer is ever recreated from it.
func (f *Floors) Record(js natsjs.JetStream, stream string, interval time.Duration, watched func() map[string]string) (stop func()) {
	written := map[string]uint64{}
	record := func(ctx context.Context) {
		for key, name := range watched() {
			cons, err := js.Consumer(ctx, stream, name)
			if err != nil {
				continue
			}
			if floor := cons.CachedInfo().AckFloor.Stream; floor > written[key] {
				if err := f.Put(ctx, key, floor); err == nil {
					written[key] = floor
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				record(ctx)
			case <-ctx.Done():
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				record(fctx)
				cancel()
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// StartAfter returns cfg starting after stream sequence floor (0: from the
// first message).
func StartAfter(cfg natsjs.ConsumerConfig, floor uint64) natsjs.ConsumerConfig {
	if floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, floor+1
	}
	return cfg
}

// OpenDurable returns the durable consumer cfg names on stream, updated
// to cfg's limits if it exists (where it starts cannot change), else
// created to start after the floor recorded under floorKey.
func OpenDurable(ctx context.Context, js natsjs.JetStream, floors *Floors, floorKey, stream string, cfg natsjs.ConsumerConfig) (natsjs.Consumer, error) {
	cons, err := js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case err == nil:
		have := cons.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
		return js.UpdateConsumer(ctx, stream, cfg)
	case !errors.Is(err, natsjs.ErrConsumerNotFound):
		return nil, err
	}
	floor, err := floors.Get(ctx, floorKey)
	if err != nil {
		return nil, err
	}
	cons, err = js.CreateConsumer(ctx, stream, StartAfter(cfg, floor))
	if errors.Is(err, natsjs.ErrConsumerExists) {
		// Another node created it first (from the same floor or a later one).
		return js.Consumer(ctx, stream, cfg.Durable)
	}
	return cons, err
}

// Retire records the acknowledgement floor of stream's durable consumer
// name, if it exists, under key (only ever raising it) and deletes it,
// reporting whether there was one.
func Retire(ctx context.Context, js natsjs.JetStream, floors *Floors, stream, name, key string) (bool, error) {
	cons, err := js.Consumer(ctx, stream, name)
	switch {
	case errors.Is(err, natsjs.ErrConsumerNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	floor := cons.CachedInfo().AckFloor.Stream
	recorded, err := floors.Get(ctx, key)
	if err != nil {
		return false, err
	}
	if floor > recorded {
		if err := floors.Put(ctx, key, floor); err != nil {
			return false, err
		}
	}
	if err := js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return false, err
	}
	return true, nil
}
