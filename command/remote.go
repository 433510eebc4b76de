package command

import (
	"context"
	"fmt"

	"github.com/oms-project/oms/cluster"
	"github.com/oms-project/oms/order"
)

// Remote reads orders from their actors on the command nodes, for a node
// that runs none (the query role only).
type Remote struct{ cluster *cluster.Cluster }

// NewRemote returns a reader that asks through cl.
func NewRemote(cl *cluster.Cluster) Remote { return Remote{cluster: cl} }

// GetOrder asks the order's owner for its current state.
func (r Remote) GetOrder(ctx context.Context, id string) (order.Order, error) {
	reply, local, err := forward(ctx, r.cluster, id, callOrder, orderCall{OrderID: id, Get: true})
	if local {
		return order.Order{}, fmt.Errorf("order %s (no command node answered): %w", id, order.ErrNotFound)
	}
	return deref(reply.Order), err
}
