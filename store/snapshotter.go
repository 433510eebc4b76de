package store

import (
	"log/slog"
	"sync"
	"time"
)

// Snapshotter writes snapshots in batches: one bbolt transaction per batch,
// not per event. Put never blocks an actor; when the queue is full the
// snapshot is dropped, which only means a longer replay on next activation
// (snapshots are a cache and carry their sequence).
type Snapshotter struct {
	db       *DB
	queue    chan Snapshot
	interval time.Duration
	stop     chan struct{}
	done     sync.WaitGroup
	log      *slog.Logger
}

// NewSnapshotter starts a batch writer with a queue of size entries that
// flushes at least every interval.
func NewSnapshotter(db *DB, size int, interval time.Duration, log *slog.Logger) *Snapshotter {
	s := &Snapshotter{db: db, queue: make(chan Snapshot, size), interval: interval, stop: make(chan struct{}), log: log}
	s.done.Add(1)
	go s.run()
	return s
}

// Put queues a snapshot for writing.
func (s *Snapshotter) Put(snap Snapshot) {
	select {
	case s.queue <- snap:
	default:
	}
}

// Close writes what is queued and stops.
func (s *Snapshotter) Close() {
	close(s.stop)
	s.done.Wait()
}

func (s *Snapshotter) run() {
	defer s.done.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	latest := make(map[snapKey]Snapshot)
	flush := func() {
		if len(latest) == 0 {
			return
		}
		batch := make([]Snapshot, 0, len(latest))
		for _, v := range latest {
			batch = append(batch, v)
		}
		clear(latest)
		if err := s.db.SaveSnapshots(batch); err != nil {
			s.log.Warn("snapshot batch not written; actors will replay further on activation", "err", err, "n", len(batch))
		}
	}
	add := func(snap Snapshot) {
		k := snapKey{snap.Kind, snap.Key}
		if old, ok := latest[k]; !ok || old.Seq < snap.Seq {
			latest[k] = snap
		}
	}
	for {
		select {
		case snap := <-s.queue:
			add(snap)
			if len(latest) >= cap(s.queue)/2 {
				flush()
			}
		case <-t.C:
			flush()
		case <-s.stop:
			for {
				select {
				case snap := <-s.queue:
					add(snap)
				default:
					flush()
					return
				}
			}
		}
	}
}

type snapKey struct {
	kind Kind
	key  string
}
