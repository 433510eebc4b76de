package credentials

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/oms-project/oms/jetstream"
)

// Provider consumers: a provider's user may pull only its own durable
// consumer of the outbox, and only its own requests.
const (
	PaymentsConsumer = "payments"
	DeliveryConsumer = "delivery"
)

// omsStreams are the streams (and the KV buckets' streams) only the node
// may create, change, purge, delete or delete messages of.
var omsStreams = []string{jetstream.StreamOrders, jetstream.StreamSKUs, jetstream.StreamInbound,
	jetstream.StreamOutbox, jetstream.StreamDeadLetter,
	"KV_OMS_MEMBERS", "KV_OMS_INBOUND_FLOORS", "KV_OMS_JOBS"}

// ServerUsers are the NATS users the embedded server accepts, each with its
// permissions, for a deployment of partitions inbound partitions. Nobody
// else is let in: there is no anonymous user.
func (s *Set) ServerUsers(partitions int) []*server.NkeyUser {
	users := make([]*server.NkeyUser, 0, len(Users))
	for _, u := range Users {
		users = append(users, &server.NkeyUser{Nkey: s.public[u], Permissions: Permissions(u, partitions)})
	}
	return users
}

// durables are the durable consumers the pipelines run on, by stream.
func durables(partitions int) map[string][]string {
	inbound := []string{jetstream.InboundAllConsumerName}
	for p := range partitions {
		inbound = append(inbound, jetstream.InboundConsumerName(p))
	}
	return map[string][]string{jetstream.StreamOrders: {jetstream.ConsumerReactor},
		jetstream.StreamOutbox:  {PaymentsConsumer, DeliveryConsumer},
		jetstream.StreamInbound: inbound}
}

// Permissions are what user u may publish and subscribe to.
//
//   - node: everything (it owns the streams and runs the pipelines): no
//     permissions at all, rather than allowing ">", so that the server
//     checks none of its publishes (with a subject per order, its cache of
//     checked subjects never hits: 1.5% of a loaded node's CPU).
//   - admin: the request-reply API, reading every stream (replay, watch,
//     dead letters), republishing provider events (a dead letter retried);
//     never writing order or SKU events, customer notifications,
//     node-to-node calls or membership, nor creating, changing, purging or
//     deleting an oms stream, deleting the pipelines' consumers or
//     changing the node's own (the inbound ones, and oms-reactor, which
//     a node retires on start: one made by hand would run effects again).
//   - payments, delivery: publish their provider events and pull their own
//     requests from the outbox, nothing else.
//   - storefront: the order and stock lookups and commands of the
//     request-reply API, no JetStream API, no event subjects.
func Permissions(u User, partitions int) *server.Permissions {
	inbox := &server.SubjectPermission{Allow: []string{"_INBOX.>"}}
	switch u {
	case UserNode:
		return nil
	case UserAdmin:
		deny := []string{jetstream.OrderEventsPrefix + ">", jetstream.SKUEventsPrefix + ">", "oms.node.>",
			jetstream.InboundPrefix + ">", jetstream.NotificationsPrefix + ">", "$KV.OMS_MEMBERS.>", "$KV.OMS_INBOUND_FLOORS.>", "$KV.OMS_JOBS.>"}
		for _, st := range omsStreams {
			for _, op := range []string{"STREAM.CREATE.", "STREAM.UPDATE.", "STREAM.DELETE.", "STREAM.PURGE.", "STREAM.MSG.DELETE."} {
				deny = append(deny, "$JS.API."+op+st)
			}
			deny = append(deny, "$JS.API.CONSUMER.DURABLE.CREATE."+st+".*")
		}
		// Its own consumers (a replay's, a watch's) it may create, change
		// and delete; the pipelines' it may not delete, and the node's it
		// may not change either: an update (sent as a create, with or
		// without the filter in the subject) could move one's filter or
		// start and stall or skip what it carries. The providers'
		// consumers it may open, to run simulated providers (oms chaos).
		for st, names := range durables(partitions) {
			for _, name := range names {
				deny = append(deny, "$JS.API.CONSUMER.DELETE."+st+"."+name)
				if st != jetstream.StreamOutbox {
					deny = append(deny, "$JS.API.CONSUMER.CREATE."+st+"."+name, "$JS.API.CONSUMER.CREATE."+st+"."+name+".>")
				}
			}
		}
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: deny},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}}}
	case UserPayments:
		return providerPermissions(jetstream.PaymentEventsPrefix, jetstream.PaymentRequestsPrefix, PaymentsConsumer)
	case UserDelivery:
		return providerPermissions(jetstream.DeliveryEventsPrefix, jetstream.DeliveryRequestPrefix, DeliveryConsumer)
	case UserStorefront:
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"oms.orders.>", "oms.stock.get", "$SRV.>"}},
			Subscribe: inbox}
	}
	return &server.Permissions{Publish: &server.SubjectPermission{}, Subscribe: &server.SubjectPermission{}}
}

// providerPermissions let a provider publish its events and pull its
// requests through its one durable consumer of the outbox: the consumer
// can only be created with the provider's requests as its filter.
func providerPermissions(events, requests, consumer string) *server.Permissions {
	outbox := jetstream.StreamOutbox
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{events + ">",
			"$JS.API.CONSUMER.CREATE." + outbox + "." + consumer + "." + requests + ">",
			"$JS.API.CONSUMER.INFO." + outbox + "." + consumer,
			"$JS.API.CONSUMER.MSG.NEXT." + outbox + "." + consumer,
			"$JS.ACK." + outbox + "." + consumer + ".>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}
