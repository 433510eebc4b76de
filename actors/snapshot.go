package actors

import (
	"slices"

	json "github.com/goccy/go-json"

	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// A snapshot is a node-local cache of what the stream says: one that does
// not decode, or is not the state of the entity it is stored under, is
// ignored and the entity is replayed from the stream instead.

// orderSnapshot decodes the snapshot stored for order id.
func orderSnapshot(id string, data []byte) (order.State, bool) {
	var s order.State
	if json.Unmarshal(data, &s) != nil || s.Order.ID != id || !slices.Contains(order.Statuses, s.Order.Status) {
		return order.State{}, false
	}
	return s, true
}

var holdStates = []inventory.HoldState{inventory.HoldReserved, inventory.HoldCommitted, inventory.HoldReleased,
	inventory.HoldRejected}

// skuSnapshot decodes the snapshot stored for sku.
func skuSnapshot(sku string, data []byte) (inventory.Stock, bool) {
	var s inventory.Stock
	if json.Unmarshal(data, &s) != nil || s.SKU != sku || !inBounds(s.OnHand) || !inBounds(s.Reserved) {
		return inventory.Stock{}, false
	}
	// What the events keep true: reserved is what the reserved holds add
	// up to, and never more than on hand.
	var held int64
	for _, h := range s.Holds {
		if !inBounds(h.Quantity) || !slices.Contains(holdStates, h.State) {
			return inventory.Stock{}, false
		}
		if h.State == inventory.HoldReserved {
			if held += h.Quantity; held > inventory.MaxOnHand {
				return inventory.Stock{}, false
			}
		}
	}
	if held != s.Reserved || s.Reserved > s.OnHand {
		return inventory.Stock{}, false
	}
	return s, true
}

func inBounds(n int64) bool { return n >= 0 && n <= inventory.MaxOnHand }
