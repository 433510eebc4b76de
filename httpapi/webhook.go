package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Inbound takes a verified provider event into OMS_INBOUND, exactly as a
// provider publishing it over NATS would.
type Inbound interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) (seq uint64, duplicate bool, err error)
}

type webhookInput struct {
	Provider  string `path:"provider" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"the provider, as named in the webhook secrets"`
	Signature string `header:"Oms-Signature" doc:"t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\"> (several v1 while a secret rotates)"`
	RawBody   []byte `contentType:"application/json"`
}

// Accepted is the reply to a webhook that was taken.
type Accepted struct {
	Stream    string `json:"stream"`
	Sequence  uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate" doc:"the event was taken before (a replay): it applies once"`
}

type acceptedOutput struct {
	Body Accepted
}

// registerWebhooks serves the providers' webhooks on the external
// listener: payment events at /webhooks/payments/{provider}, carrier
// events at /webhooks/delivery/{provider}, each body the inbound contract
// of its kind, signed with one of the provider's secrets.
func (s *Server) registerWebhooks() {
	for _, kind := range []struct {
		name, prefix, doc string
		body              reflect.Type
	}{
		{api.KindPayments, jetstream.PaymentEventsPrefix, "a payment provider's event (payment.succeeded, payment.failed, payment.cancelled)",
			reflect.TypeFor[api.PaymentEvent]()},
		{api.KindDelivery, jetstream.DeliveryEventsPrefix, "a carrier's event (delivery.in_transit, delivery.attempt_failed, delivery.delivered)",
			reflect.TypeFor[api.DeliveryEvent]()},
	} {
		// The body is read raw, since its signature covers the very bytes;
		// the node validates it as it validates a NATS-published event.
		op := huma.Operation{OperationID: "webhook_" + kind.name, Method: http.MethodPost, Path: "/webhooks/" + kind.name + "/{provider}",
			Summary: "take " + kind.doc, DefaultStatus: http.StatusAccepted, MaxBodyBytes: s.d.Limits.MaxBody, SkipValidateBody: true,
			Description: "Signed with HMAC-SHA256 over the timestamp and the body (header Oms-Signature); refused with 401 " +
				"when unsigned, forged or older than the tolerance. A verified event enters OMS_INBOUND as a NATS-published one does.",
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable}}
		prefix, name := kind.prefix, kind.name
		a := s.apis[endpoint.External]
		huma.Register(a, op, func(ctx context.Context, in *webhookInput) (*acceptedOutput, error) {
			out, err := s.webhook(ctx, name, prefix, in)
			if err != nil {
				return nil, s.fail(ctx, op.OperationID, err)
			}
			return &acceptedOutput{Body: out}, nil
		})
		// Document the body as the event it is, not as the bytes it is read as.
		registered := a.OpenAPI().Paths[op.Path].Post
		registered.RequestBody.Content["application/json"].Schema = a.OpenAPI().Components.Schemas.Schema(kind.body, true, "")
	}
}

// webhook verifies a provider's event and takes it.
func (s *Server) webhook(ctx context.Context, kind, prefix string, in *webhookInput) (Accepted, error) {
	err := auth.VerifyWebhook(in.Signature, in.RawBody, s.d.Webhooks.For(in.Provider), time.Now(), s.d.WebhookTolerance)
	if err != nil {
		s.d.Log.Warn("webhook refused", "provider", in.Provider, "reason", err)
		return Accepted{}, err
	}
	var env api.ProviderEnvelope
	if err := json.Unmarshal(in.RawBody, &env); err != nil {
		return Accepted{}, &order.ValidationError{Field: "body", Message: "invalid JSON: " + err.Error()}
	}
	if uuid.Validate(env.OrderID) != nil {
		return Accepted{}, &order.ValidationError{Field: "orderId", Message: "must be an order UUID"}
	}
	if env.Provider != in.Provider {
		return Accepted{}, &order.ValidationError{Field: "provider", Message: "must be " + in.Provider + ", the provider this webhook is signed for"}
	}
	// Refused here what the inbound consumer would dead-letter: the
	// provider hears of it at once.
	if _, err := api.ProviderCommand(kind, env.OrderID, in.RawBody, time.Now(), "", false); err != nil {
		return Accepted{}, err
	}
	seq, dup, err := s.d.Inbound.Publish(ctx, prefix+env.OrderID, "webhook:"+in.Provider+":"+env.ID, in.RawBody)
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{Stream: jetstream.StreamInbound, Sequence: seq, Duplicate: dup}, nil
}
