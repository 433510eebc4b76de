package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/api"
)

// Micro serves operations as a nats.go/micro service (`nats micro info oms`).
type Micro struct {
	nc  *nats.Conn
	svc micro.Service
	lim *Limiter
	log *slog.Logger
}

// ServeMicro adds the oms service to nc with one endpoint per operation,
// each in micro's queue group so requests spread over every node serving it.
func ServeMicro(nc *nats.Conn, version string, ops []Operation, lim *Limiter, log *slog.Logger) (*Micro, error) {
	svc, err := micro.AddService(nc, micro.Config{Name: api.ServiceName, Version: version,
		Description: "order management: commands and lookups for orders and stock"})
	if err != nil {
		return nil, fmt.Errorf("micro service: %w", err)
	}
	m := &Micro{nc: nc, svc: svc, lim: lim, log: log}
	for _, op := range ops {
		if err := svc.AddEndpoint(op.Name(), m.handler(op), micro.WithEndpointSubject(op.Subject())); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("endpoint %s: %w", op.Subject(), err)
		}
	}
	return m, nil
}

// Stop stops taking requests and waits for those in flight.
func (m *Micro) Stop() {
	_ = m.svc.Stop()
	m.lim.Wait()
}

// handler runs the operation under the limiter. micro expects a handler to
// reply before it returns; the reply goes straight to the request's reply
// subject instead, with micro's error headers.
func (m *Micro) handler(op Operation) micro.HandlerFunc {
	return func(req micro.Request) {
		reply, data := req.Reply(), req.Data()
		corr, sampled := api.CorrelationOf(req.Headers().Get)
		m.lim.Go(func(ctx context.Context) {
			ctx = WithCorrelation(ctx, corr, sampled)
			out, err := op.Handle(ctx, data)
			m.respond(ctx, op.Name(), reply, out, err)
		}, func() {
			m.respond(WithCorrelation(context.Background(), corr, sampled), op.Name(), reply, nil, ErrBusy)
		})
	}
}

func (m *Micro) respond(ctx context.Context, operation, reply string, out any, err error) {
	if reply == "" {
		return
	}
	msg := nats.NewMsg(reply)
	msg.Header.Set(api.CorrelationHeader, Correlation(ctx))
	if err != nil {
		body := Fault(ctx, m.log, operation, err)
		msg.Header.Set(micro.ErrorHeader, body.Message)
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(body.Code))
		msg.Data, _ = json.Marshal(body)
	} else if msg.Data, err = json.Marshal(out); err != nil {
		m.log.Error("encode reply", "operation", operation, "err", err)
		return
	}
	if err := m.nc.PublishMsg(msg); err != nil {
		m.log.Debug("reply not sent", "err", err)
	}
}
