package command

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Decider decides a command at its order's actor.
type Decider interface {
	Order(ctx context.Context, cmd order.Command) (order.Order, error)
}

// Inbound applies provider events to their orders.
type Inbound struct {
	Orders Decider
	Log    *slog.Logger
}

// Handle applies one provider event, stored at
// oms.inbound.<partition>.<payments|delivery>.<orderId>, to its order. An
// event the order refuses is recorded in the order's stream (order.rejected)
// and acknowledged; one that is malformed, names an unknown order or reuses
// an ID with another payload is an error the pipeline dead-letters.
func (in Inbound) Handle(ctx context.Context, m jetstream.Msg) error {
	received := time.Now().UTC()
	if md, err := m.Metadata(); err == nil {
		received = md.Timestamp.UTC()
	}
	corr, sampled := api.CorrelationIn(m.Headers().Get)
	cmd, err := inboundCommand(m.Subject(), m.Data(), received, corr, sampled)
	if err != nil {
		return err
	}
	_, err = in.Orders.Order(ctx, cmd)
	if errors.Is(err, order.ErrIllegalTransition) || errors.Is(err, order.ErrPaymentMismatch) {
		in.Log.Info("provider event refused", "order_id", cmd.Target(), "correlation_id", corr, "reason", err)
		return nil
	}
	return err
}

// Attrs names the order an inbound message is about, for log lines.
func (in Inbound) Attrs(m jetstream.Msg) []any {
	return []any{"order_id", in.Key(m)}
}

// Key is the order an inbound message is about, the last token of its
// subject: one order's provider events are handled in order.
func (Inbound) Key(m jetstream.Msg) string {
	s := m.Subject()
	return s[strings.LastIndexByte(s, '.')+1:]
}

// inboundCommand decodes a provider event stored at
// oms.inbound.<partition>.<payments|delivery>.<orderId>.
func inboundCommand(subject string, data []byte, received time.Time, correlation string, sampled bool) (order.Command, error) {
	tok := strings.Split(subject, ".")
	if len(tok) != 5 {
		return nil, &order.ValidationError{Field: "subject", Message: "not a provider event subject: " + subject}
	}
	return api.ProviderCommand(tok[3], tok[4], data, received, correlation, sampled)
}
