package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/order"
)

// call connects to the oms named by --server, runs fn and prints its result
// as indented JSON.
func call(c *cli.Context, fn func(context.Context, *client.Client) (any, error)) error {
	cl, closeFn, err := dial(c)
	if err != nil {
		return err
	}
	defer closeFn()
	out, err := fn(c.Context, cl)
	if err != nil {
		return err
	}
	return printJSON(out)
}

// args returns exactly the positional arguments named, or a usage error.
// urfave/cli stops reading flags at the first positional argument, so
// `oms order cancel ID --reason late` would leave the flag unread; flags
// after the positional arguments are read here, against the command's own
// flag definitions.
func args(c *cli.Context, names ...string) ([]string, error) {
	all := c.Args().Slice()
	if len(all) < len(names) {
		return nil, fmt.Errorf("want %s, got %d argument(s) (see --help)", strings.Join(names, " "), len(all))
	}
	pos, rest := all[:len(names)], all[len(names):]
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if !strings.HasPrefix(tok, "-") {
			return nil, fmt.Errorf("want %s, got an extra argument %q (see --help)", strings.Join(names, " "), tok)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(tok, "-"), "=")
		def := flagNamed(c, name)
		if def == nil {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if _, isBool := def.(*cli.BoolFlag); isBool && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 >= len(rest) {
				return nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = rest[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, fmt.Errorf("-%s: %w", name, err)
		}
	}
	return pos, nil
}

func flagNamed(c *cli.Context, name string) cli.Flag {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
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
					&cli.StringFlag{Name: "user", Required: true},
					&cli.StringSliceFlag{Name: "item", Required: true, Usage: "SKU:QTY:UNIT_PRICE (minor units), repeatable"},
					&cli.StringFlag{Name: "currency", Value: "EUR"},
					&cli.StringFlag{Name: "country", Required: true, Usage: "ISO 3166 alpha-2, e.g. DE"},
					&cli.StringFlag{Name: "postal-code", Required: true},
					&cli.StringFlag{Name: "address", Required: true},
					&cli.StringFlag{Name: "phone", Required: true},
					&cli.StringSliceFlag{Name: "promo", Usage: "promotion code, repeatable"},
					&cli.StringFlag{Name: "source", Value: "web", Usage: "web or app"},
					&cli.StringFlag{Name: "notes"},
					&cli.StringFlag{Name: "delivery-instructions"},
					&cli.StringFlag{Name: "payment-method", Value: "card"},
					&cli.StringFlag{Name: "idempotency-key", Usage: "retry-safe key: the same user and key always name the same order"},
				},
				Action: placeOrder,
			},
			{
				Name: "get", Usage: "show an order", ArgsUsage: "ID",
				Action: func(c *cli.Context) error {
					a, err := args(c, "ID")
					if err != nil {
						return err
					}
					return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.GetOrder(ctx, a[0]) })
				},
			},
			{
				Name: "cancel", Usage: "cancel an order (allowed until it is in transit)", ArgsUsage: "ID",
				Flags: []cli.Flag{&cli.StringFlag{Name: "reason"}, &cli.StringFlag{Name: "by", Value: "customer"}},
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
					&cli.StringFlag{Name: "country"}, &cli.StringFlag{Name: "postal-code"}, &cli.StringFlag{Name: "address"},
					&cli.StringFlag{Name: "phone"}, &cli.StringFlag{Name: "delivery-instructions"}, &cli.StringFlag{Name: "notes"},
					&cli.StringFlag{Name: "by", Value: "customer"},
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
				Name: "get", Usage: "show on hand, reserved and available", ArgsUsage: "SKU",
				Action: func(c *cli.Context) error {
					a, err := args(c, "SKU")
					if err != nil {
						return err
					}
					return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.GetStock(ctx, a[0]) })
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
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}},
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
		Usage: "orders by status and live actors of the node answering",
		Action: func(c *cli.Context) error {
			return call(c, func(ctx context.Context, cl *client.Client) (any, error) { return cl.Status(ctx) })
		},
	}
}
