package node

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/metrics"
	"github.com/oms-project/oms/order"
)

// scrapeTimeout bounds what one scrape asks of JetStream.
const scrapeTimeout = 2 * time.Second

// registerMetrics adds the figures read when Prometheus scrapes: the
// node's status, the cluster as it sees it, the durable consumers, the
// dead letters stored, and the embedded NATS server. Each set is one read.
func (n *Node) registerMetrics(context.Context) error {
	m := n.metrics
	m.Figures([]metrics.Figure{
		{Name: "orders", Help: "Orders in the read model by status.", Labels: []string{"status"}},
		{Name: "reservations_held_orders", Help: "Orders holding (or about to hold) a stock reservation: received, not yet paid or cancelled."},
		{Name: "reservations_overdue_orders", Help: "Orders the read model shows still able to expire a minute or more past their reservation's deadline: the expiry sweep should have expired them; counted up to 10,000."},
		{Name: "orders_stuck", Help: "Orders unchanged in a status for longer than its service level (--stuck-received, --stuck-paid, --stuck-in-transit), by status; counted up to 10,000.", Labels: []string{"status"}},
		{Name: "read_model_applied_sequence", Help: "Last order-stream sequence the read model applied."},
		{Name: "read_model_lag_events", Help: "Order events stored but not yet in this node's read model (absent while the order stream does not answer)."},
		{Name: "read_model_gaps", Help: "Order events the read model found missing (their subject was purged or a sequence skipped)."},
		{Name: "read_model_skipped_events", Help: "Order events the read model could not apply; each is in the dead-letter stream.", Counter: true},
		{Name: "effects_pending_events", Help: "Order events appended here (or handed over again after a stop) whose effects have not yet run: reservations, payment and delivery requests, notifications."},
		{Name: "effects_spilled_events", Help: "Of the pending events, those kept by sequence only because --effects-max-held were in memory: read back from the stream as room frees up."},
		{Name: "effects_read_back_events_total", Help: "Pending events read back from the stream since the node started (see oms_effects_spilled_events).", Counter: true},
		{Name: "effects_settled_floor", Help: "Order-stream sequence at or below which every event this node appended has had its effects run: where the next start runs them again from."},
		{Name: "actors_active", Help: "Actors in memory, by kind (order, sku).", Labels: []string{"kind"}},
		{Name: "actor_activations_total", Help: "Actors activated since the node started, by kind.", Labels: []string{"kind"}, Counter: true},
		{Name: "actor_passivations_total", Help: "Actors passivated (dropped from memory after their snapshot) since the node started, by kind.", Labels: []string{"kind"}, Counter: true},
	}, n.statusFigures)
	m.Figures([]metrics.Figure{
		{Name: "cluster_members", Help: "Live members of the cluster, as this node sees them."},
		{Name: "partitions", Help: "Order partitions of the deployment."},
		{Name: "partitions_owned", Help: "Order partitions this node owns (pulls the provider events of)."},
	}, n.clusterFigures)
	m.Figures([]metrics.Figure{
		{Name: "consumer_pending_messages", Help: "Messages stored but not yet delivered to a durable consumer, by stream and consumer (oms-inbound-<p> per inbound partition in a cluster, oms-inbound on a standalone node).", Labels: []string{"stream", "consumer"}},
		{Name: "consumer_ack_pending_messages", Help: "Messages delivered to a durable consumer and not yet acknowledged.", Labels: []string{"stream", "consumer"}},
		{Name: "consumer_redelivered_messages", Help: "Messages of a durable consumer delivered more than once and not yet acknowledged.", Labels: []string{"stream", "consumer"}},
		{Name: "dead_letters_stored", Help: "Messages in the dead-letter stream, by source.", Labels: []string{"source"}},
	}, n.consumerFigures)
	if n.server != nil {
		m.Figures([]metrics.Figure{
			{Name: "nats_connections", Help: "Client connections of the embedded NATS server."},
			{Name: "nats_subscriptions", Help: "Subscriptions of the embedded NATS server."},
			{Name: "nats_in_messages_total", Help: "Messages the embedded NATS server received.", Counter: true},
			{Name: "nats_out_messages_total", Help: "Messages the embedded NATS server sent.", Counter: true},
			{Name: "nats_in_bytes_total", Help: "Bytes the embedded NATS server received.", Counter: true},
			{Name: "nats_out_bytes_total", Help: "Bytes the embedded NATS server sent.", Counter: true},
			{Name: "nats_slow_consumers_total", Help: "Clients the embedded NATS server disconnected as slow consumers.", Counter: true},
			{Name: "nats_jetstream_storage_bytes", Help: "Bytes JetStream stores on disk on this server."},
			{Name: "nats_jetstream_memory_bytes", Help: "Bytes JetStream holds in memory on this server (memory consumers)."},
			{Name: "nats_jetstream_api_requests_total", Help: "JetStream API requests this server answered.", Counter: true},
			{Name: "nats_jetstream_api_errors_total", Help: "JetStream API requests this server answered with an error.", Counter: true},
		}, n.natsFigures)
	}
	return nil
}

func (n *Node) statusFigures(emit metrics.Emit) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := n.status(ctx)
	if err != nil {
		n.log.Debug("metrics: status unreadable", "err", err)
	}
	if n.queries != nil && err == nil {
		for _, s := range order.Statuses {
			emit("orders", float64(st.Orders[string(s)]), string(s))
		}
		emit("reservations_held_orders", float64(st.Orders[string(order.StatusReceived)]))
		if due, err := n.db.CountDueForExpiry(time.Now().Add(-time.Minute), api.MaxStuckCount); err == nil {
			emit("reservations_overdue_orders", float64(due))
		}
		if stuck, err := n.queries.StuckCounts(); err == nil {
			for s, c := range stuck {
				emit("orders_stuck", float64(c), s)
			}
		}
		emit("read_model_applied_sequence", float64(st.ReadModel.Applied))
		if st.ReadModel.StreamError == "" { // unknown: absent, not 0
			emit("read_model_lag_events", float64(st.ReadModel.Lag))
		}
		emit("read_model_gaps", float64(st.ReadModel.Gaps))
		emit("read_model_skipped_events", float64(st.ReadModel.Skipped))
	}
	if n.effects != nil {
		emit("effects_pending_events", float64(n.effects.q.Len()))
		spilled, readBack := n.effects.q.Spilled()
		emit("effects_spilled_events", float64(spilled))
		emit("effects_read_back_events_total", float64(readBack))
		emit("effects_settled_floor", float64(n.effects.q.Floor()))
	}
	if n.commands != nil {
		emit("actors_active", float64(st.ActiveOrder), "order")
		emit("actors_active", float64(st.ActiveSKU), "sku")
		oa, op, sa, sp := n.commands.ActorStats()
		emit("actor_activations_total", float64(oa), "order")
		emit("actor_activations_total", float64(sa), "sku")
		emit("actor_passivations_total", float64(op), "order")
		emit("actor_passivations_total", float64(sp), "sku")
	}
}

func (n *Node) clusterFigures(emit metrics.Emit) {
	cs := n.cluster.Status()
	emit("cluster_members", float64(len(cs.Members)))
	emit("partitions", float64(cs.Partitions))
	for _, m := range cs.Members {
		if m.Name == cs.Self {
			emit("partitions_owned", float64(len(m.Owns)))
		}
	}
}

// consumerFigures lists the durable consumers of the streams the pipelines
// and the providers read (ordered consumers, named at random, are left
// out: their names would make the label unbounded).
func (n *Node) consumerFigures(emit metrics.Emit) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, name := range []string{jetstream.StreamOrders, jetstream.StreamInbound, jetstream.StreamOutbox} {
		s, err := n.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		list := s.ListConsumers(ctx)
		for ci := range list.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			emit("consumer_pending_messages", float64(ci.NumPending), name, ci.Name)
			emit("consumer_ack_pending_messages", float64(ci.NumAckPending), name, ci.Name)
			emit("consumer_redelivered_messages", float64(ci.NumRedelivered), name, ci.Name)
		}
		if err := list.Err(); err != nil {
			n.log.Debug("metrics: consumers unreadable", "stream", name, "err", err)
		}
	}
	s, err := n.js.Stream(ctx, jetstream.StreamDeadLetter)
	if err != nil {
		return
	}
	info, err := s.Info(ctx, natsjs.WithSubjectFilter(jetstream.DeadLetterPrefix+"*"))
	if err != nil {
		return
	}
	for subject, count := range info.State.Subjects {
		emit("dead_letters_stored", float64(count), strings.TrimPrefix(subject, jetstream.DeadLetterPrefix))
	}
}

func (n *Node) natsFigures(emit metrics.Emit) {
	v, err := n.server.Varz(&server.VarzOptions{})
	if err != nil {
		return
	}
	emit("nats_connections", float64(v.Connections))
	emit("nats_subscriptions", float64(v.Subscriptions))
	emit("nats_in_messages_total", float64(v.InMsgs))
	emit("nats_out_messages_total", float64(v.OutMsgs))
	emit("nats_in_bytes_total", float64(v.InBytes))
	emit("nats_out_bytes_total", float64(v.OutBytes))
	emit("nats_slow_consumers_total", float64(v.SlowConsumers))
	if st := v.JetStream.Stats; st != nil {
		emit("nats_jetstream_storage_bytes", float64(st.Store))
		emit("nats_jetstream_memory_bytes", float64(st.Memory))
		emit("nats_jetstream_api_requests_total", float64(st.API.Total))
		emit("nats_jetstream_api_errors_total", float64(st.API.Errors))
	}
}
