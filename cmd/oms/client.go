package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// call connects to the oms named by --server, runs fn and prints its result
// as indented JSON.
func call(c *cli.Context, fn func(context.Context, *client.Client) (any, error)) error {
	return show(c, fn, nil)
}

// show is call for a read command: with --json, or without a human form,
// it prints JSON; otherwise human writes the result for a person.
func show[T any](c *cli.Context, fn func(context.Context, *client.Client) (T, error), human func(io.Writer, T)) error {
	cl, closeFn, err := dial(c)
	if err != nil {
		return err
	}
	defer closeFn()
	out, err := fn(c.Context, cl)
	if err != nil {
		return err
	}
	if human == nil || c.Bool("json") {
		return printJSON(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	human(w, out)
	return w.Flush()
}

// jsonFlag is every read command's --json.
func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON (the API's reply) instead of text"}
}

func showOrder(w io.Writer, o order.Order) {
	fmt.Fprintf(w, "order\t%s\n", o.ID)
	fmt.Fprintf(w, "status\t%s\n", o.Status)
	fmt.Fprintf(w, "user\t%s\n", o.User)
	fmt.Fprintf(w, "total\t%s\n", money(map[string]int64{o.Currency: o.Total}))
	for _, it := range o.Items {
		fmt.Fprintf(w, "item\t%s × %d at %d\n", it.SKU, it.Quantity, it.UnitPrice)
	}
	fmt.Fprintf(w, "destination\t%s %s, %s\n", o.Destination.Country, o.Destination.PostalCode, o.Destination.Address)
	fmt.Fprintf(w, "reservation\t%s (expires %s)\n", o.Reservation, o.ReservationExpiresAt.Format(time.RFC3339))
	if o.TrackingNumber != "" {
		fmt.Fprintf(w, "tracking\t%s %s\n", o.DeliveryProvider, o.TrackingNumber)
	}
	if o.CancelReason != "" {
		fmt.Fprintf(w, "cancelled\t%s\n", o.CancelReason)
	}
	for cur, amount := range o.RefundsDue {
		fmt.Fprintf(w, "refund due\t%s\n", money(map[string]int64{cur: amount}))
	}
	fmt.Fprintf(w, "created\t%s by %s\n", o.CreatedAt.Format(time.RFC3339), o.CreatedBy)
	fmt.Fprintf(w, "version\t%d\n", o.Version)
	for _, ch := range o.ChangeHistory {
		why := ""
		if ch.Why != "" {
			why = " (" + ch.Why + ")"
		}
		fmt.Fprintf(w, "  %s\t%s by %s%s\n", ch.When.Format(time.RFC3339), ch.What, ch.Who, why)
	}
}

func showStock(w io.Writer, v inventory.View) {
	fmt.Fprintf(w, "SKU\tON HAND\tRESERVED\tAVAILABLE\tVERSION\n%s\t%d\t%d\t%d\t%d\n", v.SKU, v.OnHand, v.Reserved, v.Available, v.Version)
}

func showStatus(w io.Writer, st api.Status) {
	fmt.Fprintf(w, "node\t%s (roles %s, %d partitions)\n", st.Node, strings.Join(st.Roles, ","), st.Partitions)
	for _, s := range order.Statuses {
		fmt.Fprintf(w, "%s\t%d\n", s, st.Orders[string(s)])
	}
	rm := st.ReadModel
	if rm.StreamError != "" {
		fmt.Fprintf(w, "read model\tsequence %d; lag unknown, the order stream does not answer: %s (gaps %d, skipped %d)\n", rm.Applied, rm.StreamError, rm.Gaps, rm.Skipped)
	} else {
		fmt.Fprintf(w, "read model\tsequence %d of %d (lag %d, gaps %d, skipped %d)\n", rm.Applied, rm.Stream, rm.Lag, rm.Gaps, rm.Skipped)
	}
	fmt.Fprintf(w, "actors\t%d orders, %d SKUs in memory\n", st.ActiveOrder, st.ActiveSKU)
}

// args returns exactly the positional arguments named, or a usage error.
// Flags typed after them were moved before them (interspersed).
func args(c *cli.Context, names ...string) ([]string, error) {
	all := c.Args().Slice()
	switch {
	case len(all) < len(names):
		return nil, fmt.Errorf("want %s, got %d argument(s) (see --help)", strings.Join(names, " "), len(all))
	case len(all) > len(names):
		return nil, fmt.Errorf("want %s, got an extra argument %q (see --help)", strings.Join(names, " "), all[len(names)])
	}
	return all, nil
}

// parseItem reads SKU:QTY:UNIT_PRICE (unit price in minor units).
func parseItem(s string) (order.Item, error) {
	p := strings.Split(s, ":")
	if len(p) != 3 {
		return order.Item{}, fmt.Errorf("--item %q: want SKU:QTY:UNIT_PRICE, e.g. SKU-1:2:1999", s)
	}
	qty, err := strconv.ParseInt(p[1], 10, 64)
	if err != nil {
		return order.Item{}, fmt.Errorf("--item %q: quantity: %w", s, err)
	}
	price, err := strconv.ParseInt(p[2], 10, 64)
	if err != nil {
		return order.Item{}, fmt.Errorf("--item %q: unit price (minor units): %w", s, err)
	}
	return order.Item{SKU: p[0], Quantity: qty, UnitPrice: price}, nil
}

func orderCommand() *cli.Command {
	return &cli.Command{
		Name:  "order",
		Usage: "place, inspect, cancel or update orders",
		Subcommands: []*cli.Command{
			{
				Name:  "place",
				Usage: "place an order",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "user", Required: true, Usage: "the customer placing the order"},
					&cli.StringSliceFlag{Name: "item", Required: true, Usage: "SKU:QTY:UNIT_PRICE (minor units), repeatable"},
					&cli.StringFlag{Name: "currency", Value: "EUR", Usage: "ISO 4217 code of the prices"},
					&cli.StringFlag{Name: "country", Required: true, Usage: "ISO 3166 alpha-2, e.g. DE"},
					&cli.StringFlag{Name: "postal-code", Required: true, Usage: "destination postal code"},
					&cli.StringFlag{Name: "address", Required: true, Usage: "destination street address and city"},
					&cli.StringFlag{Name: "phone", Required: true, Usage: "the recipient's phone number, international form (+49 30 1234567)"},
					&cli.StringSliceFlag{Name: "promo", Usage: "promotion code, repeatable"},
					&cli.StringFlag{Name: "source", Value: "web", Usage: "web or app"},
					&cli.StringFlag{Name: "notes", Usage: "the customer's notes on the order"},
					&cli.StringFlag{Name: "delivery-instructions", Usage: "what the courier should know (leave at the door)"},
					&cli.StringFlag{Name: "payment-method", Value: "card", Usage: "how the customer pays (the payment provider's name for it)"},
					&cli.StringFlag{Name: "idempotency-key", Usage: "retry-safe key: the same user and key always name the same order"},
				},
				Action: placeOrder,
			},
			{
				Name: "get", Usage: "show an order", ArgsUsage: "ID", Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					a, err := args(c, "ID")
					if err != nil {
						return err
					}
					return show(c, func(ctx context.Context, cl *client.Client) (order.Order, error) { return cl.GetOrder(ctx, a[0]) }, showOrder)
				},
			},
			{
				Name: "cancel", Usage: "cancel an order (allowed until it is in transit)", ArgsUsage: "ID",
				Flags: []cli.Flag{&cli.StringFlag{Name: "reason", Usage: "why, as the customer and support will read it"},
					&cli.StringFlag{Name: "by", Value: "customer", Usage: "who cancels, for the order's audit trail"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "ID")
					if err != nil {
						return err
					}
					req := api.CancelOrder{ID: a[0], CancelReason: api.CancelReason{Reason: c.String("reason")}, By: c.String("by")}
					return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.CancelOrder(ctx, req) })
				},
			},
			{
				Name: "update", Usage: "change destination, delivery instructions or notes (until in transit)", ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "country", Usage: "new destination country, ISO 3166 alpha-2"},
					&cli.StringFlag{Name: "postal-code", Usage: "new destination postal code"},
					&cli.StringFlag{Name: "address", Usage: "new destination street address and city"},
					&cli.StringFlag{Name: "phone", Usage: "new recipient phone number"},
					&cli.StringFlag{Name: "delivery-instructions", Usage: "new delivery instructions (empty clears them)"},
					&cli.StringFlag{Name: "notes", Usage: "new notes (empty clears them)"},
					&cli.StringFlag{Name: "by", Value: "customer", Usage: "who changes it, for the order's audit trail"},
				},
				Action: updateOrder,
			},
			listCommand(),
			watchCommand(),
		},
	}
}

func placeOrder(c *cli.Context) error {
	var items []order.Item
	for _, s := range c.StringSlice("item") {
		it, err := parseItem(s)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	req := api.PlaceOrder{IdempotencyKey: c.String("idempotency-key"), User: c.String("user"), NewOrder: api.NewOrder{
		Items: items, Currency: c.String("currency"), Source: c.String("source"), Notes: c.String("notes"),
		DeliveryInstructions: c.String("delivery-instructions"), PaymentMethod: c.String("payment-method"),
		PromotionCodes: c.StringSlice("promo"),
		Destination: order.Destination{Country: c.String("country"), PostalCode: c.String("postal-code"),
			Address: c.String("address"), PhoneNumber: c.String("phone")}}}
	return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.PlaceOrder(ctx, req) })
}

func updateOrder(c *cli.Context) error {
	a, err := args(c, "ID")
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *client.Client) (any, error) {
		req := api.UpdateOrder{ID: a[0], By: c.String("by")}
		if c.IsSet("delivery-instructions") {
			v := c.String("delivery-instructions")
			req.DeliveryInstructions = &v
		}
		if c.IsSet("notes") {
			v := c.String("notes")
			req.Notes = &v
		}
		if c.IsSet("country") || c.IsSet("postal-code") || c.IsSet("address") || c.IsSet("phone") {
			// The destination is replaced whole: start from the current one.
			cur, err := cl.GetOrder(ctx, a[0])
			if err != nil {
				return nil, err
			}
			d := cur.Destination
			for flag, field := range map[string]*string{"country": &d.Country, "postal-code": &d.PostalCode,
				"address": &d.Address, "phone": &d.PhoneNumber} {
				if c.IsSet(flag) {
					*field = c.String(flag)
				}
			}
			req.Destination = &d
		}
		return cl.UpdateOrder(ctx, req)
	})
}

func stockCommand() *cli.Command {
	return &cli.Command{
		Name:  "stock",
		Usage: "set or read a SKU's stock",
		Subcommands: []*cli.Command{
			{
				Name: "set", Usage: "set the quantity on hand", ArgsUsage: "SKU QTY",
				Action: func(c *cli.Context) error {
					a, err := args(c, "SKU", "QTY")
					if err != nil {
						return err
					}
					qty, err := strconv.ParseInt(a[1], 10, 64)
					if err != nil {
						return fmt.Errorf("QTY %q: %w", a[1], err)
					}
					return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.SetStock(ctx, a[0], qty) })
				},
			},
			{
				Name: "get", Usage: "show on hand, reserved and available", ArgsUsage: "SKU", Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					a, err := args(c, "SKU")
					if err != nil {
						return err
					}
					return show(c, func(ctx context.Context, cl *client.Client) (inventory.View, error) { return cl.GetStock(ctx, a[0]) }, showStock)
				},
			},
		},
	}
}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "cluster membership and partition ownership",
		Subcommands: []*cli.Command{{
			Name:  "status",
			Usage: "the live members and the partitions each owns",
			Flags: []cli.Flag{jsonFlag()},
			Action: func(c *cli.Context) error {
				cl, closeFn, err := dial(c)
				if err != nil {
					return err
				}
				defer closeFn()
				st, err := cl.ClusterStatus(c.Context)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(st)
				}
				fmt.Printf("%d partitions; %d members (as seen by %s)\n", st.Partitions, len(st.Members), st.Node)
				for _, m := range st.Members {
					fmt.Printf("  %-12s roles=%s up since %s  owns %d: %v\n", m.Name, strings.Join(m.Roles, ","),
						m.Started.Format(time.RFC3339), len(m.Partitions), m.Partitions)
				}
				for _, s := range st.Streams {
					fmt.Printf("stream %-14s leader %-10s replicas %v current %v\n", s.Stream, s.Leader, s.Replicas, s.Current)
				}
				return nil
			},
		}},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "orders by status, read-model lag and live actors of the node answering",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			return show(c, func(ctx context.Context, cl *client.Client) (api.Status, error) { return cl.Status(ctx) }, showStatus)
		},
	}
}
