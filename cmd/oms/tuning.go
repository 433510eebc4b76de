package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/config"
)

// tunable is one field of config.Tuning as a flag of `oms serve`: its
// default, its flag and the field it sets come from this one table.
type tunable struct {
	name, usage string
	dur         func(*config.Tuning) *time.Duration
	num         func(*config.Tuning) *int
}

var tunables = []tunable{
	{name: "ack-wait", usage: "how long a pulled message may stay unacknowledged before it is redelivered (also how long a crashed node's messages wait)",
		dur: func(t *config.Tuning) *time.Duration { return &t.AckWait }},
	{name: "max-attempts", usage: "deliveries of a message that keeps failing before it is dead-lettered, for every consumer",
		num: func(t *config.Tuning) *int { return &t.MaxAttempts }},
	{name: "retry-base", usage: "first wait before a failed message is tried again (doubling, with jitter)",
		dur: func(t *config.Tuning) *time.Duration { return &t.RetryBase }},
	{name: "retry-max", usage: "longest wait before a failed message is tried again",
		dur: func(t *config.Tuning) *time.Duration { return &t.RetryMax }},
	{name: "reactor-workers", usage: "order events handled at once (one order's events always in order)",
		num: func(t *config.Tuning) *int { return &t.ReactorWorkers }},
	{name: "effects-max-held", usage: "order events whose effects may wait in memory, each with the order it left; past it they are read back from the stream",
		num: func(t *config.Tuning) *int { return &t.EffectsMaxHeld }},
	{name: "inbound-max-ack-pending", usage: "provider events one inbound partition may hold unacknowledged",
		num: func(t *config.Tuning) *int { return &t.InboundMaxAckPending }},
	{name: "inbound-pull-batch", usage: "provider events one inbound partition asks for per pull",
		num: func(t *config.Tuning) *int { return &t.InboundPullBatch }},
	{name: "expiry-sweep", usage: "how often the reservations due to expire are looked up in the read model and expired",
		dur: func(t *config.Tuning) *time.Duration { return &t.ExpirySweep }},
	{name: "heartbeat-interval", usage: "how often a node writes its heartbeat",
		dur: func(t *config.Tuning) *time.Duration { return &t.HeartbeatInterval }},
	{name: "member-timeout", usage: "a member whose last heartbeat is older is gone",
		dur: func(t *config.Tuning) *time.Duration { return &t.MemberTimeout }},
	{name: "member-key-ttl", usage: "how long the membership bucket keeps a silent member's key",
		dur: func(t *config.Tuning) *time.Duration { return &t.MemberKeyTTL }},
	{name: "floor-interval", usage: "how often an inbound partition's acknowledgement floor is recorded",
		dur: func(t *config.Tuning) *time.Duration { return &t.FloorInterval }},
	{name: "order-mailbox", usage: "requests one order actor may have queued before 503",
		num: func(t *config.Tuning) *int { return &t.OrderMailbox }},
	{name: "sku-mailbox", usage: "requests one SKU actor may have queued before 503",
		num: func(t *config.Tuning) *int { return &t.SKUMailbox }},
	{name: "group-commit-max", usage: "queued requests a SKU actor decides and appends as one message",
		num: func(t *config.Tuning) *int { return &t.GroupCommitMax }},
	{name: "fenced-attempts", usage: "catch-ups an actor tries when another writer moved its subject",
		num: func(t *config.Tuning) *int { return &t.FencedAttempts }},
	{name: "snapshot-every", usage: "events after which an actor's snapshot is written",
		num: func(t *config.Tuning) *int { return &t.SnapshotEvery }},
	{name: "snapshot-queue", usage: "snapshots waiting to be written (beyond it one is skipped: a longer replay later)",
		num: func(t *config.Tuning) *int { return &t.SnapshotQueue }},
	{name: "snapshot-flush-interval", usage: "longest wait of a snapshot before it is written",
		dur: func(t *config.Tuning) *time.Duration { return &t.SnapshotFlushInterval }},
	{name: "read-model-commit-interval", usage: "shortest time between two read-model transactions under load",
		dur: func(t *config.Tuning) *time.Duration { return &t.ReadModelCommitInterval }},
	{name: "duplicate-window", usage: "how long the inbound, outbox and dead-letter streams remember a message ID (the fenced order and SKU streams keep 100ms)",
		dur: func(t *config.Tuning) *time.Duration { return &t.DuplicateWindow }},
	{name: "transport-max-age", usage: "how long the inbound and outbox streams keep messages",
		dur: func(t *config.Tuning) *time.Duration { return &t.TransportMaxAge }},
}

// tuningFlags are the tunables as flags, with their defaults.
func tuningFlags() []cli.Flag {
	d := config.DefaultTuning()
	flags := make([]cli.Flag, 0, len(tunables))
	for _, t := range tunables {
		if t.dur != nil {
			flags = append(flags, &cli.DurationFlag{Name: t.name, Usage: t.usage, Value: *t.dur(&d), Category: "tuning"})
		} else {
			flags = append(flags, &cli.IntFlag{Name: t.name, Usage: t.usage, Value: *t.num(&d), Category: "tuning"})
		}
	}
	return flags
}

// read sets the tunable's field from its flag.
func (t tunable) read(c *cli.Context, into *config.Tuning) {
	if t.dur != nil {
		*t.dur(into) = c.Duration(t.name)
	} else {
		*t.num(into) = c.Int(t.name)
	}
}

// readTuning sets into from the tuning flags, as oms serve and oms bench
// both take them.
func readTuning(c *cli.Context, into *config.Tuning) {
	for _, t := range tunables {
		t.read(c, into)
	}
}
