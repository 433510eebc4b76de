package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/store"
)

// startProjection keeps the bbolt status index in step with the order
// events stream. It resumes from the sequence stored with the index, in the
// same transaction as the index, so every event counts exactly once.
func (n *Node) startProjection(ctx context.Context, stream natsjs.Stream) error {
	_, seq, err := n.db.StatusCounts()
	if err != nil {
		return fmt.Errorf("status index: %w", err)
	}
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{jetstream.OrderEventsPrefix + ">"}}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, seq+1
	}
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("projection consumer: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for ctx.Err() == nil {
			batch, err := oc.Fetch(512, natsjs.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, natsjs.ErrNoMessages) {
					n.log.Debug("projection fetch", "err", err)
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			var changes []store.StatusChange
			for m := range batch.Messages() {
				md, err := m.Metadata()
				if err != nil {
					continue
				}
				var e struct {
					Status string `json:"status"`
				}
				if json.Unmarshal(m.Data(), &e) != nil || e.Status == "" {
					continue
				}
				changes = append(changes, store.StatusChange{Seq: md.Sequence.Stream, Status: e.Status,
					OrderID: strings.TrimPrefix(m.Subject(), jetstream.OrderEventsPrefix)})
			}
			if err := n.db.ApplyStatusChanges(changes); err != nil && ctx.Err() == nil {
				n.log.Warn("status index not updated", "err", err)
			}
		}
	}()
	return nil
}
