package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A file is a cache of particular streams, not of whatever streams carry
// the same names: one whose JetStream store was wiped, or restored from an
// older backup, holds a read model ahead of the stream (which skips the
// new events reusing its sequences and lists orders the stream no longer
// has) and snapshots whose fences the subjects never match (their actors
// could not append again). The file records each stream's creation time
// and drops what it derived from a stream created at another time, from
// an order stream that holds fewer events than the read model applied, or
// from one that holds another event than the read model's last where that
// one was (a copy with the same creation time, appended to since).

var bucketOrigin = []byte("origin")

// Keys of the origin bucket: the order stream (read model and order
// snapshots) and the SKU stream (SKU snapshots).
const (
	originOrders = "orders"
	originSKUs   = "skus"
)

// Stream is what the node found of one stream on start.
type Stream struct {
	Name    string // the stream's JetStream name, for the reason
	Created time.Time
	LastSeq uint64
	// Holds is, for the order stream, the event it holds at the sequence
	// of the last one the read model applied (DB.LastEvent); nil if it
	// holds none there (deleted: that proves nothing) or was not asked.
	Holds *Event
}

// Event is one event of a stream: its sequence and ID.
type Event struct {
	Seq uint64
	ID  string
}

// CheckOrigin drops what the file derived from other streams than orders
// and skus, as they are now, and records their creation times. It returns
// why it dropped anything, "" when it kept everything. A file that
// recorded nothing yet (new, or written by a version before this check)
// is taken to match.
func (db *DB) CheckOrigin(orders, skus Stream) (dropped string, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		origin, err := tx.CreateBucketIfNotExists(bucketOrigin)
		if err != nil {
			return err
		}
		for _, c := range []struct {
			key       string
			s         Stream
			snapshots Kind
			readModel bool
		}{{originOrders, orders, KindOrder, true}, {originSKUs, skus, KindSKU, false}} {
			why := ""
			if was := u64(origin.Get([]byte(c.key))); was != 0 && was != uint64(c.s.Created.UnixNano()) {
				why = fmt.Sprintf("stream %s was created at %s; the file was built from one created at %s",
					c.s.Name, c.s.Created.UTC().Format(time.RFC3339Nano), time.Unix(0, int64(was)).UTC().Format(time.RFC3339Nano))
			} else if c.readModel {
				seq, id := lastEvent(tx)
				if applied := u64(tx.Bucket(bucketRMMeta).Get(keyRMApplied)); applied > c.s.LastSeq {
					why = fmt.Sprintf("stream %s holds %d events; the read model applied %d", c.s.Name, c.s.LastSeq, applied)
				} else if h := c.s.Holds; h != nil && h.Seq == seq && h.ID != id {
					why = fmt.Sprintf("stream %s holds event %s at sequence %d; the read model applied %s there", c.s.Name, h.ID, seq, id)
				}
			}
			if why != "" {
				if dropped != "" {
					dropped += "; "
				}
				dropped += why
				if err := dropSnapshots(tx, c.snapshots); err != nil {
					return err
				}
				if c.readModel {
					if err := dropReadModel(tx); err != nil {
						return err
					}
				}
			}
			if err := putU64(origin, []byte(c.key), uint64(c.s.Created.UnixNano())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("check the store against the streams: %w", err)
	}
	return dropped, nil
}
