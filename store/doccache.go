package store

import (
	"github.com/oms-project/oms/order"
)

// docCacheSize bounds the documents the read model keeps decoded: about
// 10 MB of orders in flight. At half a node's peak an order's five events
// reach the projection within a second, so a few hundred are in flight;
// flat out, with the reactor seconds behind the placements, it holds a
// part of them and the rest are read from the file as before.
const docCacheSize = 8192

// docCache keeps, decoded, the documents of the orders the read model has
// folded an event into and which have not ended, with their keys. The next
// event of such an order then needs neither the ID lookup, nor the document
// read, nor its decoding: that was a fifth of what a transaction cost.
//
// It holds exactly what the file holds: ApplyEvents changes it only after
// its transaction committed, while it holds DB.apply, and DropReadModel
// empties it. A cached Order is never written in place (order.Evolve
// copies what it changes), so handing it to Evolve is safe.
type docCache struct {
	max  int
	docs map[string]cachedDoc
}

type cachedDoc struct {
	key   []byte
	order order.Order
}

func newDocCache(max int) docCache {
	return docCache{max: max, docs: make(map[string]cachedDoc)}
}

func (c *docCache) get(id string) (cachedDoc, bool) {
	d, ok := c.docs[id]
	return d, ok
}

// keep records what a committed transaction wrote for each order it
// touched. An order that ended leaves: events after its end are rare.
// When full, an arbitrary document leaves to make room (a map's iteration
// starts at a random place).
func (c *docCache) keep(touched map[string]cachedDoc) {
	for id, d := range touched {
		if d.order.Status.Terminal() || c.max == 0 {
			delete(c.docs, id)
			continue
		}
		if _, ok := c.docs[id]; !ok && len(c.docs) >= c.max {
			for old := range c.docs {
				delete(c.docs, old)
				break
			}
		}
		c.docs[id] = d
	}
}

func (c *docCache) clear() { clear(c.docs) }
