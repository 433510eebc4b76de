package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// deadLetterActions is where every retry and drop is recorded, in the
// dead-letter stream itself (one token deeper than the dead letters, so
// that a list of oms.deadletter.* never shows it).
const deadLetterActions = jetstream.DeadLetterPrefix + "log.actions"

// deadLetterOperations are the dead-letter tools: list, retry, drop.
func (n *Node) deadLetterOperations() []endpoint.Operation {
	list := endpoint.New("deadletters_list", api.SubjectDeadLettersList, n.listDeadLetters)
	endpoint.Bind(list, endpoint.Staff(http.MethodGet, "/v1/admin/deadletters", "list dead letters: why, from where, since when", auth.RoleAdmin),
		func(_ context.Context, _ auth.Principal, in *api.ListDeadLetters) (api.ListDeadLetters, error) {
			return *in, nil
		})
	retry := endpoint.New("deadletters_retry", api.SubjectDeadLettersRetry, n.retryDeadLetters)
	endpoint.Bind(retry, endpoint.Staff(http.MethodPost, "/v1/admin/deadletters/retry", "send dead letters back where they came from", auth.RoleAdmin), bindAction)
	drop := endpoint.New("deadletters_drop", api.SubjectDeadLettersDrop, n.dropDeadLetters)
	endpoint.Bind(drop, endpoint.Staff(http.MethodPost, "/v1/admin/deadletters/drop", "delete dead letters for good", auth.RoleAdmin), bindAction)
	return []endpoint.Operation{list, retry, drop}
}

func bindAction(_ context.Context, p auth.Principal, in *struct{ Body api.DeadLetterAction }) (api.DeadLetterAction, error) {
	a := in.Body
	a.By = p.By()
	return a, nil
}

func (n *Node) deadLetterStream(ctx context.Context) (natsjs.Stream, error) {
	return n.js.Stream(ctx, jetstream.StreamDeadLetter)
}

func (n *Node) listDeadLetters(ctx context.Context, req api.ListDeadLetters) (api.DeadLetterPage, error) {
	limit := req.Limit
	if limit == 0 {
		limit = 100
	}
	stream, err := n.deadLetterStream(ctx)
	if err != nil {
		return api.DeadLetterPage{}, err
	}
	filter := jetstream.DeadLetterPrefix + "*"
	if req.Source != "" {
		filter = jetstream.DeadLetterPrefix + req.Source
	}
	page := api.DeadLetterPage{DeadLetters: []api.DeadLetter{}}
	err = jetstream.Fold(ctx, stream, filter, req.After, func(m *natsjs.RawStreamMsg) error {
		if len(page.DeadLetters) == limit {
			page.Next = page.DeadLetters[limit-1].ID
			return jetstream.ErrStop
		}
		page.DeadLetters = append(page.DeadLetters, deadLetterOf(m))
		return nil
	})
	return page, err
}

func deadLetterOf(m *natsjs.RawStreamMsg) api.DeadLetter {
	d := api.DeadLetter{ID: m.Sequence, Source: strings.TrimPrefix(m.Subject, jetstream.DeadLetterPrefix),
		Subject: m.Header.Get(jetstream.HeaderOrigSubject), Stream: m.Header.Get(jetstream.HeaderOrigStream),
		Reason: m.Header.Get(jetstream.HeaderReason), At: m.Time.UTC()}
	d.StreamSequence, _ = strconv.ParseUint(m.Header.Get(jetstream.HeaderOrigSeq), 10, 64)
	d.Headers = jetstream.OriginalHeaders(m.Header)
	if json.Valid(m.Data) {
		d.Data = m.Data
	}
	return d
}

// retryDeadLetters sends each dead letter back where it came from: a
// provider event to its provider subject; an order event's effects are
// run again by the reactor (the event itself is the truth and is not
// published twice). What went back is deleted from
// the dead-letter stream; whatever fails again is dead-lettered anew.
func (n *Node) retryDeadLetters(ctx context.Context, req api.DeadLetterAction) (api.DeadLetterOutcomes, error) {
	return n.actOnDeadLetters(ctx, req, "retried", func(ctx context.Context, m *natsjs.RawStreamMsg, d api.DeadLetter) (string, error) {
		switch d.Source {
		case "inbound":
			// Stored as oms.inbound.<partition>.<kind>.<order>: the provider
			// published <kind>.events.<order>.
			tok := strings.Split(d.Subject, ".")
			if len(tok) != 5 {
				return "", fmt.Errorf("not a provider event's subject: %s", d.Subject)
			}
			to := tok[3] + ".events." + tok[4]
			// With the event's own headers (its correlation and trace), under
			// a new message ID: the original's is still in the duplicate
			// window, where it would make this copy a duplicate.
			_, err := jetstream.Publish(ctx, n.js, to, "dlq:"+strconv.FormatUint(d.ID, 10), m.Data, nats.Header(d.Headers))
			return to, err
		case "reactor":
			if n.react == nil {
				return "", errors.New("this node does not run the reactor (the command role)")
			}
			return "the reactor", n.react.Handle(ctx, storedMsg{subject: d.Subject, data: m.Data, header: nats.Header(d.Headers)})
		case "timers":
			// From a version that armed a timer per order: the expiry
			// sweep expires the order without it.
			return "", errors.New("a timers dead letter is not retried: the expiry sweep expires its order; drop it")
		}
		return "", fmt.Errorf("a %s dead letter is not retried (a read model is rebuilt: oms rebuild readmodel)", d.Source)
	})
}

// dropDeadLetters deletes dead letters for good.
func (n *Node) dropDeadLetters(ctx context.Context, req api.DeadLetterAction) (api.DeadLetterOutcomes, error) {
	if req.All {
		return api.DeadLetterOutcomes{}, &order.ValidationError{Field: "all", Message: "drop names its dead letters one by one"}
	}
	return n.actOnDeadLetters(ctx, req, "dropped", func(context.Context, *natsjs.RawStreamMsg, api.DeadLetter) (string, error) {
		return "", nil
	})
}

// actOnDeadLetters does act to each dead letter named, deletes those it did
// and records every outcome in the dead-letter stream's action log.
func (n *Node) actOnDeadLetters(ctx context.Context, req api.DeadLetterAction, done string,
	act func(context.Context, *natsjs.RawStreamMsg, api.DeadLetter) (string, error)) (api.DeadLetterOutcomes, error) {
	stream, err := n.deadLetterStream(ctx)
	if err != nil {
		return api.DeadLetterOutcomes{}, err
	}
	ids := req.IDs
	if req.All {
		page, err := n.listDeadLetters(ctx, api.ListDeadLetters{Source: req.Source, Limit: 1000})
		if err != nil {
			return api.DeadLetterOutcomes{}, err
		}
		for _, d := range page.DeadLetters {
			ids = append(ids, d.ID)
		}
	}
	by := req.By
	if by == "" {
		by = "admin"
	}
	out := api.DeadLetterOutcomes{Outcomes: []api.DeadLetterOutcome{}}
	for _, id := range ids {
		o := api.DeadLetterOutcome{ID: id, Action: done}
		m, err := stream.GetMsg(ctx, id)
		switch {
		case errors.Is(err, natsjs.ErrMsgNotFound):
			o.Action, o.Error = "refused", "no such dead letter (retried or dropped already?)"
		case err != nil:
			return out, err
		case !strings.HasPrefix(m.Subject, jetstream.DeadLetterPrefix) || strings.Count(m.Subject, ".") != 2:
			o.Action, o.Error = "refused", "not a dead letter"
		default:
			d := deadLetterOf(m)
			if o.To, err = act(ctx, m, d); err != nil {
				o.Action, o.Error = "refused", err.Error()
			} else if err := stream.DeleteMsg(ctx, id); err != nil && !errors.Is(err, natsjs.ErrMsgNotFound) {
				return out, err
			}
		}
		n.recordDeadLetterAction(ctx, o, by)
		out.Outcomes = append(out.Outcomes, o)
	}
	return out, nil
}

func (n *Node) recordDeadLetterAction(ctx context.Context, o api.DeadLetterOutcome, by string) {
	data, _ := json.Marshal(struct {
		api.DeadLetterOutcome
		By string    `json:"by"`
		At time.Time `json:"at"`
	}{o, by, time.Now().UTC()})
	if _, err := n.js.Publish(ctx, deadLetterActions, data); err != nil {
		n.log.Warn("dead-letter action not recorded", "id", o.ID, "err", err)
	}
}

// storedMsg is a stored message handed to a handler again.
type storedMsg struct {
	subject string
	data    []byte
	header  nats.Header
}

func (m storedMsg) Subject() string      { return m.subject }
func (m storedMsg) Data() []byte         { return m.data }
func (m storedMsg) Headers() nats.Header { return m.header }
func (m storedMsg) Metadata() (*natsjs.MsgMetadata, error) {
	return &natsjs.MsgMetadata{NumDelivered: 1}, nil
}
