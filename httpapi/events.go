package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/order"
)

// Events follows an order's events as they are appended.
type Events interface {
	// Watch calls fn with each event of order id after stream sequence
	// after, in order, as it is appended, until ctx ends or fn fails.
	Watch(ctx context.Context, id string, after uint64, fn func(seq uint64, data []byte) error) error
}

// typeOfEvent is the type each event's data has.
var typeOfEvent = reflect.TypeFor[order.Event]()

// keepAlive is how often an idle stream sends a comment, so that proxies
// and clients see it alive.
const keepAlive = 15 * time.Second

type eventsInput struct {
	ID          string `path:"id" format:"uuid" doc:"the order"`
	LastEventID string `header:"Last-Event-ID" doc:"the id of the last event received: the stream resumes after it"`
	After       uint64 `query:"after" doc:"the version after which to start (without Last-Event-ID)"`
}

// registerEvents serves GET /v1/orders/{id}/events on both listeners: the
// order's events as Server-Sent Events, each with its stream sequence as
// its id, so that a client reconnecting with Last-Event-ID (as every
// EventSource does) gets exactly the events after it.
func (s *Server) registerEvents() {
	for l, allowed := range map[endpoint.Listener][]auth.Role{
		endpoint.External: {auth.RoleCustomer},
		endpoint.Internal: {auth.RoleSupport, auth.RoleAdmin},
	} {
		op := huma.Operation{OperationID: "orders_events", Method: http.MethodGet, Path: "/v1/orders/{id}/events",
			Summary:     "follow an order's events live (Server-Sent Events)",
			Description: "Each event is `id: <stream sequence>`, `event: <type>`, `data: <the order event as JSON>`. Roles: " + roles(allowed) + ".",
			Security:    []map[string][]string{{"bearer": {}}}, Metadata: map[string]any{"stream": true},
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests, http.StatusServiceUnavailable},
			Responses: map[string]*huma.Response{"200": {Description: "the order's events, as they are appended",
				Content: map[string]*huma.MediaType{"text/event-stream": {Schema: &huma.Schema{Type: huma.TypeString,
					Description: "text/event-stream; each data line is an order event",
					Extensions:  map[string]any{"x-event-schema": s.apis[l].OpenAPI().Components.Schemas.Schema(typeOfEvent, true, "")}}}}}}}
		huma.Register(s.apis[l], op, func(ctx context.Context, in *eventsInput) (*huma.StreamResponse, error) {
			after, err := s.authorizeStream(ctx, allowed, in)
			if err != nil {
				return nil, s.fail(ctx, op.OperationID, err)
			}
			select {
			case s.streams <- struct{}{}:
			default:
				return nil, s.fail(ctx, op.OperationID, fmt.Errorf("too many event streams open: %w", api.ErrUnavailable))
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				defer func() { <-s.streams }()
				s.stream(hctx, in.ID, after)
			}}, nil
		})
	}
}

// authorizeStream checks the caller may follow the order and returns the
// sequence to resume after.
func (s *Server) authorizeStream(ctx context.Context, roles []auth.Role, in *eventsInput) (uint64, error) {
	p, ok := auth.PrincipalFrom(ctx)
	switch {
	case !ok:
		return 0, fmt.Errorf("no bearer token: %w", api.ErrUnauthenticated)
	case !slices.Contains(roles, p.Role):
		return 0, fmt.Errorf("role %s may not follow orders here: %w", p.Role, api.ErrForbidden)
	}
	if p.IsCustomer() {
		if owner, err := s.d.Owner(ctx, in.ID); err != nil || owner != p.Subject {
			return 0, fmt.Errorf("order %s: %w", in.ID, order.ErrNotFound)
		}
	}
	after := in.After
	if in.LastEventID != "" {
		seq, err := strconv.ParseUint(in.LastEventID, 10, 64)
		if err != nil {
			return 0, &order.ValidationError{Field: "Last-Event-ID", Message: "must be the id of an event this stream sent"}
		}
		after = seq
	}
	return after, nil
}

// stream writes the order's events until the client goes away. One
// goroutine writes (events and keep-alives), each write with its own
// deadline.
func (s *Server) stream(hctx huma.Context, id string, after uint64) {
	_, w := humago.Unwrap(hctx)
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(hctx.Context())
	defer cancel()
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetHeader("X-Accel-Buffering", "no")
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.d.Limits.WriteTimeout)); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write([]byte("retry: 2000\n\n")) != nil {
		return
	}
	type event struct {
		seq  uint64
		data []byte
	}
	events := make(chan event, 64)
	watched := make(chan error, 1)
	go func() {
		watched <- s.d.Events.Watch(ctx, id, after, func(seq uint64, data []byte) error {
			select {
			case events <- event{seq, data}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case e := <-events:
			var head struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(e.data, &head)
			msg := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", e.seq, head.Type, e.data)
			if write(msg) != nil {
				return
			}
		case <-tick.C:
			if write([]byte(": keep-alive\n\n")) != nil {
				return
			}
		case err := <-watched:
			if err != nil && ctx.Err() == nil {
				s.d.Log.Warn("event stream ended", "order_id", id, "correlation_id", endpoint.Correlation(ctx), "err", err)
			}
			return
		case <-ctx.Done():
			return
		}
	}
}
