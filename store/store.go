// Package store wraps bbolt: node-local snapshots of actor state and the
// read model (order documents, their indexes, counts and analytics).
// Everything here is a cache of the event streams and can be deleted; the
// node rebuilds it from JetStream.
//
// It may import the domain and api (the shapes of the analytics it keeps),
// nothing else of oms.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bucketOrderSnapshots = []byte("order_snapshots")
	bucketSKUSnapshots   = []byte("sku_snapshots")
)

// Kind selects the snapshot bucket.
type Kind int

const (
	KindOrder Kind = iota
	KindSKU
)

func (k Kind) bucket() []byte {
	if k == KindSKU {
		return bucketSKUSnapshots
	}
	return bucketOrderSnapshots
}

// DB is the node's bbolt file. It is safe for concurrent use: bbolt allows
// one writer and many readers at a time.
type DB struct {
	bolt *bolt.DB
	// marker guards a file written without fsyncs (boot.go); its boot is
	// "" when the file is fsynced at every commit.
	marker bootMarker
	// Dropped says why Open dropped what the file held (the read model,
	// or after a crash everything), "" when it kept it: the projection
	// rebuilds the read model from the stream, and actors without a
	// snapshot replay their subjects.
	Dropped string
}

// Why Open drops what a file holds.
const (
	DroppedEarlierLayout = "the read model was written by an earlier version in another layout"
	DroppedAfterCrash    = "the machine went down while the file was open, and the streams may have lost what it holds"
)

// Open opens (or creates) the bbolt file at path. On Linux it is written
// without fsyncs and dropped when the machine went down while it was open
// (boot.go says why).
func Open(path string) (*DB, error) { return open(path, bootID()) }

// open is Open for the boot named boot ("": none, fsync every commit).
func open(path, boot string) (*DB, error) {
	db := &DB{marker: markerOf(path, boot)}
	if boot != "" {
		stale, err := db.marker.stale()
		if err != nil {
			return nil, err
		}
		if stale {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("drop %s: %w", path, err)
			}
			db.Dropped = DroppedAfterCrash
		}
		if err := db.marker.write(); err != nil {
			return nil, err
		}
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, NoSync: boot != ""})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (is another oms using this data dir?)", path, err)
	}
	if err != nil {
		// A file bbolt cannot read is a cache all the same: deleting it
		// loses nothing, the node rebuilds it from the streams.
		return nil, fmt.Errorf("open %s: %w (delete it to have the node rebuild it from the streams)", path, err)
	}
	db.bolt = b
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOrderSnapshots, bucketSKUSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		rebuilt, err := openReadModel(tx)
		if rebuilt {
			db.Dropped = DroppedEarlierLayout
		}
		return err
	})
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return db, nil
}

// Close syncs the file, closes it and, once nothing of it is left only in
// the page cache, removes its boot marker.
func (db *DB) Close() error {
	if db.marker.boot == "" {
		return db.bolt.Close()
	}
	err := db.bolt.Sync()
	if cerr := db.bolt.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The marker stays: the next boot drops what may not be on disk.
		return err
	}
	return db.marker.remove()
}

// Snapshot is an actor's state as of stream sequence Seq.
type Snapshot struct {
	Kind Kind
	Key  string
	Seq  uint64
	Data []byte
}

// LoadSnapshot returns the stored snapshot for key, if any.
func (db *DB) LoadSnapshot(k Kind, key string) (data []byte, seq uint64, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(k.bucket()).Get([]byte(key))
		if len(v) < 8 {
			return nil
		}
		seq = binary.BigEndian.Uint64(v[:8])
		data = append([]byte(nil), v[8:]...)
		ok = true
		return nil
	})
	return data, seq, ok, err
}

// SaveSnapshots writes a batch in one transaction. A snapshot never replaces
// a newer one for the same key.
func (db *DB) SaveSnapshots(batch []Snapshot) error {
	if len(batch) == 0 {
		return nil
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, s := range batch {
			b := tx.Bucket(s.Kind.bucket())
			if old := b.Get([]byte(s.Key)); len(old) >= 8 && binary.BigEndian.Uint64(old[:8]) > s.Seq {
				continue
			}
			v := make([]byte, 8+len(s.Data))
			binary.BigEndian.PutUint64(v, s.Seq)
			copy(v[8:], s.Data)
			if err := b.Put([]byte(s.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteSnapshot deletes the snapshot of key, if any: one an actor found
// ahead of its stream.
func (db *DB) DeleteSnapshot(k Kind, key string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(k.bucket()).Delete([]byte(key)) })
}

// DropSnapshots deletes every snapshot of kind k.
func (db *DB) DropSnapshots(k Kind) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return dropSnapshots(tx, k) })
}

func dropSnapshots(tx *bolt.Tx, k Kind) error {
	if err := tx.DeleteBucket(k.bucket()); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	_, err := tx.CreateBucket(k.bucket())
	return err
}

func addCount(b *bolt.Bucket, key []byte, delta int64) error {
	var n int64
	if v := b.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n+delta))
	return b.Put(append([]byte(nil), key...), v[:])
}
