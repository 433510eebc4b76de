package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bojanz/currency"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// parseTime reads RFC 3339 or a duration before now ("24h").
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339 (2026-11-27T00:00:00Z) or a duration ago (24h)", flag, s)
	}
	return t, nil
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list orders matching filters, oldest first (a table, or --json)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "user", Usage: "orders of this customer"},
			&cli.StringFlag{Name: "status", Usage: "orders in this status: " + statusList(order.Statuses)},
			&cli.StringFlag{Name: "source", Usage: "orders placed from this source: web or app"},
			&cli.StringFlag{Name: "promo", Usage: "orders with this promotion code"},
			&cli.StringFlag{Name: "sku", Usage: "orders with a line of this SKU"},
			&cli.StringFlag{Name: "from", Usage: "created at or after (RFC 3339, or a duration ago: 24h)"},
			&cli.StringFlag{Name: "to", Usage: "created before"},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "page size"},
			&cli.StringFlag{Name: "cursor", Usage: "continue after a page (its next cursor)"},
			&cli.BoolFlag{Name: "all", Usage: "follow cursors to the last page"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			from, err := parseTime("from", c.String("from"))
			if err != nil {
				return err
			}
			to, err := parseTime("to", c.String("to"))
			if err != nil {
				return err
			}
			f := order.Filter{User: c.String("user"), Status: c.String("status"), Source: c.String("source"),
				PromotionCode: c.String("promo"), SKU: c.String("sku"), From: from, To: to, Limit: c.Int("limit"),
				Cursor: c.String("cursor")}
			cl, closeFn, err := dial(c)
			if err != nil {
				return err
			}
			defer closeFn()
			var all []order.Order
			next := ""
			for {
				page, err := cl.ListOrders(c.Context, f)
				if err != nil {
					return err
				}
				all, next = append(all, page.Orders...), page.Next
				if !c.Bool("all") || next == "" {
					break
				}
				f.Cursor = next
			}
			if c.Bool("json") {
				return printJSON(api.OrderPage{Orders: all, Next: next})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tUSER\tSTATUS\tITEMS\tTOTAL\tSOURCE\tPROMO")
			for _, o := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d %s\t%s\t%v\n", o.ID, o.CreatedAt.Format(time.DateTime), o.User,
					o.Status, o.BasketSize, o.Total, o.Currency, o.Source, o.PromotionCodes)
			}
			if next != "" {
				fmt.Fprintf(tw, "next page: --cursor %s\n", next)
			}
			return tw.Flush()
		},
	}
}

func dial(c *cli.Context) (*client.Client, func(), error) {
	url := c.String("server")
	opts, err := clientAuth(c)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(url, append(opts, nats.Name("oms cli"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w (is `oms serve` running? set --server or OMS_SERVER; --nkey or --creds if it needs other credentials)", url, err)
	}
	cl := client.New(nc)
	cl.Timeout = c.Duration("timeout")
	return cl, nc.Close, nil
}

// dialJS is dial plus a JetStream handle on the same connection.
func dialJS(c *cli.Context) (*client.Client, natsjs.JetStream, func(), error) {
	cl, closeFn, err := dial(c)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := natsjs.New(cl.NC)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return cl, js, closeFn, nil
}

// statusList names statuses, for a flag's description.
func statusList(statuses []order.Status) string {
	names := make([]string, len(statuses))
	for i, s := range statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "print an order's changes as they happen; resume with --from the last sequence printed",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Usage: "stream sequence already seen (0: from the beginning)"},
			&cli.BoolFlag{Name: "until-done", Usage: "exit once the order is completed or cancelled"},
			&cli.BoolFlag{Name: "json", Usage: "print each event as JSON"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, "ID")
			if err != nil {
				return err
			}
			_, js, closeFn, err := dialJS(c)
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			stream, err := js.Stream(ctx, jetstream.StreamOrders)
			if err != nil {
				return err
			}
			err = jetstream.Watch(ctx, stream, jetstream.OrderEventsPrefix+a[0], c.Uint64("from"),
				func(m natsjs.Msg, seq uint64) error {
					e, err := order.DecodeEvent(m.Data())
					if err != nil {
						return err
					}
					if c.Bool("json") {
						b, _ := json.Marshal(api.OrderChange{Seq: seq, Event: e})
						fmt.Println(string(b))
					} else {
						fmt.Printf("%d\t%s\t%-30s\t%-16s\treservation=%s\tby=%s\n", seq, e.At.Format(time.RFC3339),
							e.Type, e.Status, e.Reservation, e.By)
					}
					if c.Bool("until-done") && e.Status.Terminal() {
						return jetstream.ErrStop
					}
					return nil
				})
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
}

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "analytics: orders, revenue and basket size per year and month, and promotion code performance",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "year", Usage: "one year, with its months (default: every year)"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			cl, closeFn, err := dial(c)
			if err != nil {
				return err
			}
			defer closeFn()
			sum, err := cl.Summary(c.Context, c.Int("year"))
			if err != nil {
				return err
			}
			promos, err := cl.Promotions(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(map[string]any{"years": sum.Years, "months": sum.Months, "promotions": promos.Promotions})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "PERIOD\tORDERS\tPAID\tCOMPLETED\tCANCELLED\tAVG BASKET\tREVENUE\tAVG ORDER VALUE\t")
			for _, p := range append(sum.Years, sum.Months...) {
				row(tw, p.Period, p.Analytics, p.AverageBasketSize, p.AverageOrderValue)
			}
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t")
			fmt.Fprintln(tw, "PROMOTION\tORDERS\tPAID\tCOMPLETED\tCANCELLED\tAVG BASKET\tREVENUE\tAVG ORDER VALUE\t")
			for _, p := range promos.Promotions {
				row(tw, p.Code, p.Analytics, p.AverageBasketSize, p.AverageOrderValue)
			}
			return tw.Flush()
		},
	}
}

func row(tw *tabwriter.Writer, name string, a api.Analytics, basket float64, aov map[string]int64) {
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s\t\n", name, a.Orders, a.Paid, a.Completed, a.Cancelled,
		basket, money(a.Revenue), money(aov))
}

// money prints amounts of minor units in each currency's own decimals
// (2 for EUR, 0 for JPY, 3 for KWD), currencies in alphabetical order.
func money(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, cur := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, amount(m[cur], cur)+" "+cur)
	}
	return strings.Join(parts, " ")
}

// amount formats v minor units of cur.
func amount(v int64, cur string) string {
	digits, ok := currency.GetDigits(cur)
	if !ok {
		digits = 2
	}
	sign, u := "", uint64(v)
	if v < 0 {
		sign, u = "-", uint64(-v)
	}
	if digits == 0 {
		return sign + strconv.FormatUint(u, 10)
	}
	div := uint64(1)
	for range digits {
		div *= 10
	}
	return fmt.Sprintf("%s%d.%0*d", sign, u/div, int(digits), u%div)
}

func rebuildCommand() *cli.Command {
	do := func(what string) cli.ActionFunc {
		return func(c *cli.Context) error {
			cl, closeFn, err := dial(c)
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			var bar *progress
			r, err := cl.Rebuild(ctx, what, func(j api.Job) {
				if bar == nil {
					fmt.Fprintf(os.Stderr, "%s is rebuilding its %s (job %s)\n", j.Node, what, j.ID)
					bar = newProgress(os.Stderr, j.Total)
				}
				bar.total = j.Total
				bar.set(j.Done)
			})
			if bar != nil {
				bar.done()
			}
			if err != nil {
				return err
			}
			fmt.Printf("%s rebuilt the %s from the streams: %d events, %d orders, %d skus in %.2fs\n",
				r.Node, what, r.Events, r.Orders, r.SKUs, r.Seconds)
			return nil
		}
	}
	return &cli.Command{
		Name:  "rebuild",
		Usage: "drop a running node's local state and rebuild it from the streams, showing its progress",
		Subcommands: []*cli.Command{
			{Name: "readmodel", Usage: "the bbolt read model (lookups, lists, analytics)", Action: do("readmodel")},
			{Name: "snapshots", Usage: "the order and SKU actor snapshots", Action: do("snapshots")},
		},
	}
}
