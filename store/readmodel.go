package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/order"
)

// The read model: order documents, their indexes, per-status counts and
// analytics aggregates, all updated in the transaction that records the
// stream sequence applied, so each event counts exactly once.
//
// Documents are keyed by creation time, then ID (docKey), not by ID:
// the orders whose events arrive together are the ones placed together,
// so a transaction rewrites a few adjacent pages instead of one random
// page per event (order IDs are hashes). rm_ids finds an order's key.
var (
	bucketRMDocs      = []byte("rm_docs")
	bucketRMIDs       = []byte("rm_ids")
	bucketRMIndex     = []byte("rm_index")
	bucketRMStatus    = []byte("rm_status_counts")
	bucketRMAnalytics = []byte("rm_analytics")
	bucketRMMeta      = []byte("rm_meta")
	keyRMApplied      = []byte("applied_seq")
	keyRMGaps         = []byte("gaps")
	keyRMSkipped      = []byte("skipped")
	// keyRMLastEvent is the sequence (8 bytes) and ID of the last event
	// the read model applied: what CheckOrigin asks the stream for.
	keyRMLastEvent   = []byte("last_event")
	readModelBuckets = [][]byte{bucketRMDocs, bucketRMIDs, bucketRMIndex, bucketRMStatus, bucketRMAnalytics, bucketRMMeta}
	// bucketRMOrdersByID is where versions before the creation-time layout
	// kept documents (keyed by ID, without an expiry index in the oldest):
	// a read model that has it is dropped on open and rebuilt from the
	// stream.
	bucketRMOrdersByID = []byte("rm_orders")
)

// Index fields (the first part of every index key).
const (
	idxUser    = "u"
	idxStatus  = "s"
	idxSource  = "o"
	idxPromo   = "p"
	idxSKU     = "k"
	idxCreated = "c"
	// idxExpiry lists the orders whose reservation can still expire, by
	// when it does (the key's time is the expiry, not the creation).
	idxExpiry = "x"
)

// AppliedEvent is one order event with its stream sequence. A Skip event
// is one the read model moves past without applying it (it could not be
// decoded or applied, and is in the dead-letter stream): it is counted.
type AppliedEvent struct {
	Seq   uint64
	Event order.Event
	Skip  bool
}

// ReadModelState says how far the read model is.
type ReadModelState struct {
	Applied uint64 `json:"appliedSequence"`
	// Gaps counts times the stream sequence jumped (messages deleted from
	// the stream, or a bug): each is logged by the projection.
	Gaps uint64 `json:"gaps"`
	// Skipped counts events the read model could not apply (each is in the
	// dead-letter stream with the reason).
	Skipped uint64 `json:"skipped"`
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(b *bolt.Bucket, key []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(key, buf[:])
}

// ReadModel returns the applied sequence and gap count.
func (db *DB) ReadModel() (ReadModelState, error) {
	var s ReadModelState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketRMMeta)
		s.Applied, s.Gaps, s.Skipped = u64(m.Get(keyRMApplied)), u64(m.Get(keyRMGaps)), u64(m.Get(keyRMSkipped))
		return nil
	})
	return s, err
}

// LastEvent returns the stream sequence and ID of the last event the read
// model applied; 0 and "" before its first (or in a file written before
// it recorded them).
func (db *DB) LastEvent() (seq uint64, id string, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		seq, id = lastEvent(tx)
		return nil
	})
	return seq, id, err
}

func lastEvent(tx *bolt.Tx) (uint64, string) {
	v := tx.Bucket(bucketRMMeta).Get(keyRMLastEvent)
	if len(v) < 8 {
		return 0, ""
	}
	return binary.BigEndian.Uint64(v), string(v[8:])
}

// DropReadModel deletes the read model; the projection then rebuilds it
// from the start of the stream.
func (db *DB) DropReadModel() error {
	return db.bolt.Update(dropReadModel)
}

func dropReadModel(tx *bolt.Tx) error {
	for _, name := range append(readModelBuckets, bucketRMOrdersByID) {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return createReadModel(tx)
}

func createReadModel(tx *bolt.Tx) error {
	for _, name := range readModelBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// openReadModel creates the read model's buckets, or drops a read model of
// an earlier layout for the projection to rebuild (reported by rebuilt).
func openReadModel(tx *bolt.Tx) (rebuilt bool, err error) {
	if tx.Bucket(bucketRMOrdersByID) != nil {
		return true, dropReadModel(tx)
	}
	return false, createReadModel(tx)
}

// docKey is where an order's document is: its creation time (big endian,
// so keys sort by it), then its ID. Every index key ends with it.
func docKey(created time.Time, id string) []byte {
	return appendDocKey(make([]byte, 0, 8+len(id)), created, id)
}

func appendDocKey(k []byte, created time.Time, id string) []byte {
	return append(binary.BigEndian.AppendUint64(k, uint64(created.UnixNano())), id...)
}

func indexKey(field, value string, created time.Time, id string) []byte {
	k := make([]byte, 0, len(field)+len(value)+len(id)+10)
	k = append(k, field...)
	k = append(k, 0)
	k = append(k, value...)
	k = append(k, 0)
	return appendDocKey(k, created, id)
}

// lookup returns an order's document key from rm_ids, nil if the read
// model has not seen the order placed.
func lookup(ids *bolt.Bucket, id string) []byte {
	v := ids.Get([]byte(id))
	if len(v) != 8 {
		return nil
	}
	return append(bytes.Clone(v), id...)
}

func indexPrefix(field, value string) []byte {
	return append(append(append([]byte(field), 0), value...), 0)
}

// ApplyEvents folds a batch of order events into the read model in one
// transaction. Events at or below the applied sequence are skipped, so a
// redelivered batch changes nothing. It returns how many were applied.
func (db *DB) ApplyEvents(batch []AppliedEvent) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	applied := 0
	err := db.bolt.Update(func(tx *bolt.Tx) (err error) {
		// An event that panics the fold (a malformed one) fails the batch,
		// which bbolt rolls back; the projection then finds it alone.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("apply order events: panic: %v", r)
			}
		}()
		docs, ids, idx, counts, agg, meta := tx.Bucket(bucketRMDocs), tx.Bucket(bucketRMIDs), tx.Bucket(bucketRMIndex),
			tx.Bucket(bucketRMStatus), tx.Bucket(bucketRMAnalytics), tx.Bucket(bucketRMMeta)
		last, gaps, skipped := u64(meta.Get(keyRMApplied)), u64(meta.Get(keyRMGaps)), u64(meta.Get(keyRMSkipped))
		cache := map[string]*api.Analytics{}
		aggregate := func(key string) (*api.Analytics, error) {
			if a, ok := cache[key]; ok {
				return a, nil
			}
			a := &api.Analytics{Revenue: map[string]int64{}}
			if v := agg.Get([]byte(key)); v != nil {
				if err := json.Unmarshal(v, a); err != nil {
					return nil, err
				}
				if a.Revenue == nil {
					a.Revenue = map[string]int64{}
				}
			}
			cache[key] = a
			return a, nil
		}
		// Status counts change by a few per event and are written once, at
		// the end, as the aggregates are.
		counted := map[order.Status]int64{}
		// What this transaction made of each order it touched: under load
		// an order's next events often come in the same batch (at half the
		// peak, all five), and then need no lookup, read or decoding. A
		// document is encoded and written once, after the batch's last
		// event of its order: right after it, while its pages are still
		// in the cache (flat out, most orders have one event in a batch).
		touched := map[string]touchedDoc{}
		lastOf := make(map[string]int, len(batch))
		for i, ae := range batch {
			if !ae.Skip {
				lastOf[ae.Event.OrderID] = i
			}
		}
		var lastSeq uint64 // and lastID: the batch's last event applied
		var lastID string
		for i, ae := range batch {
			if ae.Seq <= last {
				continue
			}
			if last > 0 && ae.Seq != last+1 {
				gaps++
			}
			last = ae.Seq
			if ae.Skip {
				skipped++
				continue
			}
			applied++
			e := ae.Event
			lastSeq, lastID = ae.Seq, e.ID
			old, key, found, err := document(touched, ids, docs, e.OrderID)
			if err != nil {
				return err
			}
			if !found && e.Type != order.EventPlaced {
				// An event for an order we never saw placed: the stream
				// was trimmed, or we started mid-way. Skip it.
				gaps++
				continue
			}
			st := order.Evolve(order.State{Order: old}, e)
			cur := st.Order
			cur.Version = ae.Seq
			if key == nil {
				key = docKey(cur.CreatedAt, cur.ID)
				if err := ids.Put([]byte(cur.ID), key[:8]); err != nil { // lookup appends the ID
					return err
				}
			}
			if e.Type == order.EventPlaced {
				if err := indexPlaced(idx, cur); err != nil {
					return err
				}
			}
			if err := indexExpiry(idx, old, cur); err != nil {
				return err
			}
			if old.Status != cur.Status {
				if old.Status != "" {
					if err := idx.Delete(indexKey(idxStatus, string(old.Status), cur.CreatedAt, cur.ID)); err != nil {
						return err
					}
					counted[old.Status]--
				}
				if err := idx.Put(indexKey(idxStatus, string(cur.Status), cur.CreatedAt, cur.ID), nil); err != nil {
					return err
				}
				counted[cur.Status]++
			}
			if err := analyze(aggregate, old, cur, e); err != nil {
				return err
			}
			d := touchedDoc{key: key, order: cur, unwritten: true}
			if lastOf[e.OrderID] == i {
				if err := d.put(docs); err != nil {
					return err
				}
			}
			touched[e.OrderID] = d
		}
		// An order whose last event in the batch was skipped (a batch whose
		// sequences repeat) still has its document written.
		for _, d := range touched {
			if err := d.put(docs); err != nil {
				return err
			}
		}
		for k, a := range cache {
			v, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := agg.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for status, delta := range counted {
			if delta != 0 {
				if err := addCount(counts, []byte(status), delta); err != nil {
					return err
				}
			}
		}
		if err := putU64(meta, keyRMGaps, gaps); err != nil {
			return err
		}
		if err := putU64(meta, keyRMSkipped, skipped); err != nil {
			return err
		}
		if lastSeq != 0 {
			if err := meta.Put(keyRMLastEvent, append(binary.BigEndian.AppendUint64(nil, lastSeq), lastID...)); err != nil {
				return err
			}
		}
		return putU64(meta, keyRMApplied, last)
	})
	return applied, err
}

type touchedDoc struct {
	key   []byte
	order order.Order
	// unwritten says the document has changed since it was last put.
	unwritten bool
}

// put writes the document if it has changed since it was last put.
func (d *touchedDoc) put(docs *bolt.Bucket) error {
	if !d.unwritten {
		return nil
	}
	doc, err := json.Marshal(d.order)
	if err != nil {
		return err
	}
	d.unwritten = false
	return docs.Put(d.key, doc)
}

// document is the order's document as the transaction has it so far: what
// an earlier event of the batch made of it (order.Evolve never writes into
// the order it is given, so handing that to it again is safe), else the
// file's. found is false for an order the read model has no document of;
// key is nil when it has not even its ID.
func document(touched map[string]touchedDoc, ids, docs *bolt.Bucket, id string) (
	old order.Order, key []byte, found bool, err error) {
	if d, ok := touched[id]; ok {
		return d.order, d.key, true, nil
	}
	if key = lookup(ids, id); key == nil {
		return old, nil, false, nil
	}
	v := docs.Get(key)
	if v == nil {
		return old, key, false, nil
	}
	if err := json.Unmarshal(v, &old); err != nil {
		return old, key, false, fmt.Errorf("read model doc %s: %w", id, err)
	}
	return old, key, true, nil
}

// indexExpiry keeps the order in the expiry index while its reservation
// can expire, under the time it does.
func indexExpiry(idx *bolt.Bucket, old, cur order.Order) error {
	was, is := old.ExpiryApplies(), cur.ExpiryApplies()
	if was == is && (!is || old.ReservationExpiresAt.Equal(cur.ReservationExpiresAt)) {
		return nil
	}
	if was {
		if err := idx.Delete(indexKey(idxExpiry, "", old.ReservationExpiresAt, old.ID)); err != nil {
			return err
		}
	}
	if is {
		return idx.Put(indexKey(idxExpiry, "", cur.ReservationExpiresAt, cur.ID), nil)
	}
	return nil
}

// DueForExpiry lists, soonest first, up to limit orders whose reservation
// could expire and whose expiry is at or before now. The read model may
// lag: an order it lists may have been paid since (its actor decides).
func (db *DB) DueForExpiry(now time.Time, limit int) ([]string, error) {
	var ids []string
	err := db.walkDue(now, limit, func(id []byte) { ids = append(ids, string(id)) })
	return ids, err
}

// CountDueForExpiry counts, up to limit, the orders DueForExpiry would
// list, without copying their IDs.
func (db *DB) CountDueForExpiry(now time.Time, limit int) (int, error) {
	n := 0
	err := db.walkDue(now, limit, func([]byte) { n++ })
	return n, err
}

// walkDue calls fn with the ID of each of up to limit orders due for
// expiry at now, soonest first; id is valid only during the call.
func (db *DB) walkDue(now time.Time, limit int, fn func(id []byte)) error {
	prefix := indexPrefix(idxExpiry, "")
	end := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(now.UnixNano())+1)
	return db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRMIndex).Cursor()
		n := 0
		for k, _ := c.Seek(prefix); k != nil && bytes.Compare(k, end) < 0 && n < limit; k, _ = c.Next() {
			fn(k[len(prefix)+8:])
			n++
		}
		return nil
	})
}

func indexPlaced(idx *bolt.Bucket, o order.Order) error {
	keys := [][]byte{
		indexKey(idxUser, o.User, o.CreatedAt, o.ID),
		indexKey(idxSource, o.Source, o.CreatedAt, o.ID),
		indexKey(idxCreated, "", o.CreatedAt, o.ID),
	}
	for _, p := range o.PromotionCodes {
		keys = append(keys, indexKey(idxPromo, p, o.CreatedAt, o.ID))
	}
	for _, it := range o.Items {
		keys = append(keys, indexKey(idxSKU, it.SKU, o.CreatedAt, o.ID))
	}
	for _, k := range keys {
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// analyze updates the aggregates an event changes. Orders count in the
// year and month they were placed (UTC) and under each promotion code.
// Revenue is what was paid, less what was refunded, per currency.
func analyze(aggregate func(string) (*api.Analytics, error), old, cur order.Order, e order.Event) error {
	keys := []string{"y:" + cur.CreatedAt.UTC().Format("2006"), "m:" + cur.CreatedAt.UTC().Format("2006-01")}
	for _, p := range cur.PromotionCodes {
		keys = append(keys, "p:"+p)
	}
	becamePaid := cur.PaymentInformation.Status == "succeeded" && old.PaymentInformation.Status != "succeeded"
	// Only refunds of counted revenue reduce it; a refused duplicate
	// payment was never revenue.
	// Revenue and its refunds are counted in the currency the money was
	// paid in: no two currencies are ever added together.
	var refund int64
	paid, refundIn := cur.PaymentInformation.Currency, cur.Currency
	if paid == "" {
		paid = cur.Currency
	}
	if e.Cancel != nil && old.PaymentInformation.Status == "succeeded" {
		refund = e.Cancel.RefundDue
		if e.Cancel.RefundCurrency != "" {
			refundIn = e.Cancel.RefundCurrency
		}
	}
	for _, k := range keys {
		a, err := aggregate(k)
		if err != nil {
			return err
		}
		if e.Type == order.EventPlaced {
			a.Orders++
			a.Units += cur.BasketSize
		}
		if becamePaid {
			a.Paid++
			a.Revenue[paid] += cur.PaymentInformation.Amount
		}
		if refund > 0 {
			a.Revenue[refundIn] -= refund
		}
		if old.Status != cur.Status {
			switch cur.Status {
			case order.StatusCancelled:
				a.Cancelled++
			case order.StatusCompleted:
				a.Completed++
			}
		}
	}
	return nil
}

// StatusCounts returns the number of orders in each status.
func (db *DB) StatusCounts() (map[string]int64, error) {
	out := map[string]int64{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRMStatus).ForEach(func(k, v []byte) error {
			out[string(k)] = int64(u64(v))
			return nil
		})
	})
	return out, err
}

// Order returns an order from the read model.
func (db *DB) Order(id string) (order.Order, bool, error) {
	var o order.Order
	var ok bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		key := lookup(tx.Bucket(bucketRMIDs), id)
		if key == nil {
			return nil
		}
		v := tx.Bucket(bucketRMDocs).Get(key)
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &o)
	})
	return o, ok, err
}

// ErrBadCursor is returned for a cursor ListOrders did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// driver picks the index that narrows the scan most: identity filters
// first (a user has few orders), then promotion, SKU, status, source.
func driver(f order.Filter) (field, value string) {
	switch {
	case f.User != "":
		return idxUser, f.User
	case f.PromotionCode != "":
		return idxPromo, f.PromotionCode
	case f.SKU != "":
		return idxSKU, f.SKU
	case f.Status != "":
		return idxStatus, f.Status
	case f.Source != "":
		return idxSource, f.Source
	}
	return idxCreated, ""
}

// ListOrders returns up to f.Limit orders matching f after f.Cursor, and
// the cursor of the next page ("" when there is none). Pages follow
// creation time, so orders placed while a client pages through appear at
// the end and none is returned twice.
func (db *DB) ListOrders(f order.Filter) ([]order.Order, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = order.DefaultPageSize
	}
	limit = min(limit, order.MaxPageSize)
	field, value := driver(f)
	prefix := indexPrefix(field, value)
	start := prefix
	if !f.From.IsZero() {
		start = binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(f.From.UnixNano()))
	}
	if f.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || len(c) < 8 {
			return nil, "", ErrBadCursor
		}
		// Seek to the cursor's key and skip it.
		start = append(bytes.Clone(prefix), c...)
		start = append(start, 0)
	}
	var end []byte
	if !f.To.IsZero() {
		end = binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(f.To.UnixNano()))
	}
	out := make([]order.Order, 0, min(limit, 64))
	next := ""
	err := db.bolt.View(func(tx *bolt.Tx) error {
		docs := tx.Bucket(bucketRMDocs)
		c := tx.Bucket(bucketRMIndex).Cursor()
		var lastKey []byte
		k, _ := c.Seek(start)
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if end != nil && bytes.Compare(k, end) >= 0 {
				return nil
			}
			if len(out) == limit {
				// More index entries remain: there may be a next page.
				next = base64.RawURLEncoding.EncodeToString(lastKey[len(prefix):])
				return nil
			}
			v := docs.Get(k[len(prefix):])
			if v == nil {
				continue
			}
			var o order.Order
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			lastKey = k
			if f.Matches(o) {
				out = append(out, o)
			}
		}
		return nil
	})
	return out, next, err
}

func averages(a api.Analytics) (float64, map[string]int64) {
	basket := 0.0
	if a.Orders > 0 {
		basket = float64(a.Units) / float64(a.Orders)
	}
	aov := map[string]int64{}
	if a.Paid > 0 {
		for c, r := range a.Revenue {
			aov[c] = r / a.Paid
		}
	}
	return basket, aov
}

// Summary returns the yearly aggregates (year 0: all years) and the
// monthly ones of the year asked for.
func (db *DB) Summary(year int) (years, months []api.PeriodAnalytics, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRMAnalytics).Cursor()
		scan := func(prefix string, into *[]api.PeriodAnalytics) error {
			for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
				var p api.PeriodAnalytics
				if err := json.Unmarshal(v, &p.Analytics); err != nil {
					return err
				}
				p.Period = string(k[2:])
				p.AverageBasketSize, p.AverageOrderValue = averages(p.Analytics)
				*into = append(*into, p)
			}
			return nil
		}
		yp, mp := "y:", ""
		if year > 0 {
			yp = "y:" + strconv.Itoa(year)
			mp = "m:" + strconv.Itoa(year) + "-"
		}
		if err := scan(yp, &years); err != nil {
			return err
		}
		if mp != "" {
			return scan(mp, &months)
		}
		return nil
	})
	return years, months, err
}

// Promotions returns every promotion code's aggregate, most orders first.
func (db *DB) Promotions() ([]api.PromotionAnalytics, error) {
	var out []api.PromotionAnalytics
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRMAnalytics).Cursor()
		for k, v := c.Seek([]byte("p:")); k != nil && bytes.HasPrefix(k, []byte("p:")); k, v = c.Next() {
			var p api.PromotionAnalytics
			if err := json.Unmarshal(v, &p.Analytics); err != nil {
				return err
			}
			p.Code = string(k[2:])
			p.AverageBasketSize, p.AverageOrderValue = averages(p.Analytics)
			out = append(out, p)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Orders > out[j].Orders })
	return out, err
}

// CountOrders returns how many orders the read model holds.
func (db *DB) CountOrders() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRMIDs).Stats().KeyN
		return nil
	})
	return n, err
}
