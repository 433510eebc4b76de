package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
)

func explainCommand() *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "an order's causal timeline: each event, what caused it, who, when, the node that appended it and the effects it produced",
		ArgsUsage: "ORDER",
		Flags:     []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			a, err := args(c, "ORDER")
			if err != nil {
				return err
			}
			return show(c, func(ctx context.Context, cl *client.Client) (api.Timeline, error) { return cl.ExplainOrder(ctx, a[0]) }, showTimeline)
		},
	}
}

func showTimeline(w io.Writer, t api.Timeline) {
	fmt.Fprintf(w, "order %s: %d events\n", t.OrderID, len(t.Entries))
	for _, e := range t.Entries {
		fmt.Fprintf(w, "\n#%d\t%s\t%s → %s\n", e.Sequence, e.At.Format(time.RFC3339Nano), e.Type, e.Status)
		fmt.Fprintf(w, "\tby %s on node %s\tcorrelation %s\n", e.By, dash(e.Node), dash(e.Correlation))
		cause := "\tcaused by " + e.Cause.Source + " " + e.Cause.ID
		if m := e.Cause.Message; m != nil {
			cause += fmt.Sprintf(" (%s #%d %s)", m.Stream, m.Seq, m.Subject)
		}
		fmt.Fprintln(w, cause)
		for _, f := range e.Effects {
			if f.Stream == "" {
				fmt.Fprintf(w, "\t→ %s\tsent %s\n", f.Kind, f.Subject)
				continue
			}
			fmt.Fprintf(w, "\t→ %s\t%s #%d %s\n", f.Kind, f.Stream, f.Seq, f.Subject)
		}
	}
	if len(t.ProviderEvents) > 0 {
		fmt.Fprintln(w, "\nprovider events stored")
		for _, m := range t.ProviderEvents {
			fmt.Fprintf(w, "\t%s\t%s #%d %s\n", m.ID, m.Stream, m.Seq, m.Subject)
		}
	}
	for _, n := range t.Notes {
		fmt.Fprintln(w, "\nnote: "+n)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stuckCommand() *cli.Command {
	return &cli.Command{
		Name:  "stuck",
		Usage: "orders past their status's service level (unpaid past the reservation, paid but not shipped, in transit too long), oldest first",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "status", Usage: "one status only: " + statusList(api.StuckStatuses)},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "orders listed (the counts cover all)"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			req := api.ListStuck{Status: c.String("status"), Limit: c.Int("limit")}
			return show(c, func(ctx context.Context, cl *client.Client) (api.StuckOrders, error) { return cl.Stuck(ctx, req) }, showStuck)
		},
	}
}

func showStuck(w io.Writer, s api.StuckOrders) {
	for _, st := range api.StuckStatuses {
		fmt.Fprintf(w, "%s\t%d stuck\t(service level %s)\n", st, s.Counts[string(st)], s.ServiceLevels[string(st)])
	}
	if len(s.Orders) == 0 {
		return
	}
	fmt.Fprintln(w, "\nORDER\tSTATUS\tSINCE\tOVERDUE\tUSER")
	for _, o := range s.Orders {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Status, o.Since.Format(time.RFC3339), o.Overdue, o.User)
	}
}
