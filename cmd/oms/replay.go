package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"github.com/oms-project/oms/jetstream"
)

// ReplayLine is one message as `oms replay` writes it: a JSON line.
type ReplayLine struct {
	Stream  string              `json:"stream"`
	Seq     uint64              `json:"seq"`
	Subject string              `json:"subject"`
	Time    time.Time           `json:"time"`
	Headers map[string][]string `json:"headers,omitempty"`
	// Data is the payload as JSON when it is JSON, else as a string.
	Data json.RawMessage `json:"data"`
}

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "read a stream (or a subject filter of it) as JSON lines, or republish it to another subject",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stream", Value: jetstream.StreamOrders, Usage: "stream to read (OMS_ORDERS, OMS_SKUS, OMS_INBOUND, OMS_OUTBOX, OMS_DEADLETTER, ...)"},
			&cli.StringFlag{Name: "subject", Usage: "subject filter, e.g. 'oms.events.order.>' (default: the whole stream)"},
			&cli.Uint64Flag{Name: "from-seq", Usage: "first stream sequence"},
			&cli.StringFlag{Name: "since", Usage: "first message time (RFC 3339, or a duration ago: 2h)"},
			&cli.StringFlag{Name: "until", Usage: "last message time (RFC 3339, or a duration ago)"},
			&cli.StringFlag{Name: "out", Usage: "write JSON lines to this file (default: stdout)"},
			&cli.StringFlag{Name: "to", Usage: "republish each message's payload and headers to this subject instead"},
			&cli.Float64Flag{Name: "rate", Usage: "messages per second when republishing (0: no limit)"},
		},
		Action: replay,
	}
}

func replay(c *cli.Context) error {
	since, err := parseTime("since", c.String("since"))
	if err != nil {
		return err
	}
	until, err := parseTime("until", c.String("until"))
	if err != nil {
		return err
	}
	cl, js, closeFn, err := dialJS(c)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx := c.Context
	opts := jetstream.ReplayOptions{Stream: c.String("stream"), Subject: c.String("subject"),
		FromSeq: c.Uint64("from-seq"), Since: since, Until: until}
	total := replayTotal(ctx, js, opts)
	bar := newProgress(os.Stderr, total)
	var handle func(natsjs.Msg, *natsjs.MsgMetadata) error
	if to := c.String("to"); to != "" {
		var limiter *rate.Limiter
		if r := c.Float64("rate"); r > 0 {
			limiter = rate.NewLimiter(rate.Limit(r), 1)
		}
		handle = func(m natsjs.Msg, md *natsjs.MsgMetadata) error {
			if limiter != nil {
				if err := limiter.Wait(ctx); err != nil {
					return err
				}
			}
			out := nats.NewMsg(to)
			out.Data = m.Data()
			for k, v := range m.Headers() {
				// The source's fencing and scheduling headers would be
				// enforced against the target.
				if strings.HasPrefix(k, "Nats-Expected-") || strings.HasPrefix(k, "Nats-Schedule") {
					continue
				}
				out.Header[k] = v
			}
			// Its Nats-Msg-Id is kept, or one is given from where it is
			// stored (a message published without one),
			// so replaying twice stores each message once.
			if out.Header.Get(nats.MsgIdHdr) == "" {
				out.Header.Set(nats.MsgIdHdr, md.Stream+":"+strconv.FormatUint(md.Sequence.Stream, 10))
			}
			if err := cl.NC.PublishMsg(out); err != nil {
				return err
			}
			bar.add()
			return nil
		}
	} else {
		var w io.Writer = os.Stdout
		if path := c.String("out"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		bw := bufio.NewWriter(w)
		defer bw.Flush()
		enc := json.NewEncoder(bw)
		handle = func(m natsjs.Msg, md *natsjs.MsgMetadata) error {
			line := ReplayLine{Stream: md.Stream, Seq: md.Sequence.Stream, Subject: m.Subject(), Time: md.Timestamp.UTC(),
				Headers: m.Headers(), Data: m.Data()}
			if !json.Valid(m.Data()) {
				line.Data, _ = json.Marshal(string(m.Data()))
			}
			bar.add()
			return enc.Encode(line)
		}
	}
	n, err := jetstream.Replay(ctx, js, opts, handle)
	bar.done()
	if err != nil {
		return err
	}
	if c.String("to") != "" {
		if err := cl.NC.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "replayed %d messages from %s\n", n, opts.Stream)
	return nil
}

// replayTotal estimates how many messages a replay will read, for the bar.
func replayTotal(ctx context.Context, js natsjs.JetStream, o jetstream.ReplayOptions) uint64 {
	s, err := js.Stream(ctx, o.Stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	if o.Subject == "" || o.Subject == ">" {
		if o.FromSeq > info.State.FirstSeq {
			return info.State.LastSeq - o.FromSeq + 1
		}
		return info.State.Msgs
	}
	return 0
}

// progress draws a bar on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	total uint64
	n     uint64
	last  time.Time
	on    bool
}

func newProgress(w *os.File, total uint64) *progress {
	return &progress{w: w, total: total, on: isTerminal(w)}
}

// isTerminal says whether f is a terminal: progress is drawn there only,
// never into a file or a pipe.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) add() { p.set(p.n + 1) }

// set moves the bar to n.
func (p *progress) set(n uint64) {
	p.n = n
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if p.total == 0 {
		fmt.Fprintf(p.w, "\r%d messages", p.n)
		return
	}
	const width = 40
	filled := int(min(p.n, p.total) * width / p.total)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3d%%", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.n, p.total,
		min(p.n, p.total)*100/p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
