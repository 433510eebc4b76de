package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
)

func dlqCommand() *cli.Command {
	action := func(subject string) cli.ActionFunc {
		return func(c *cli.Context) error {
			req := api.DeadLetterAction{All: c.Bool("all"), Source: c.String("source")}
			for _, a := range c.Args().Slice() {
				id, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return fmt.Errorf("dead letter ID %q: want the number `oms dlq list` shows", a)
				}
				req.IDs = append(req.IDs, id)
			}
			return call(c, func(ctx context.Context, cl *client.Client) (any, error) {
				var out api.DeadLetterOutcomes
				err := cl.Request(ctx, subject, req, &out)
				return out, err
			})
		}
	}
	return &cli.Command{
		Name:  "dlq",
		Usage: "the dead-letter stream: what could not be processed, and why; send it back or drop it",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "dead letters, oldest first: ID, source, age, original subject, reason",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "source", Usage: "only those of one pipeline: inbound, reactor or projection (timers: from versions before the expiry sweep)"},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many (up to 1000)"},
					&cli.Uint64Flag{Name: "after", Usage: "those after this ID (the next of a page)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					cl, closeFn, err := dial(c)
					if err != nil {
						return err
					}
					defer closeFn()
					var page api.DeadLetterPage
					req := api.ListDeadLetters{Source: c.String("source"), Limit: c.Int("limit"), After: c.Uint64("after")}
					if err := cl.Request(c.Context, api.SubjectDeadLettersList, req, &page); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(page)
					}
					tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSOURCE\tAGE\tSUBJECT\tREASON")
					for _, d := range page.DeadLetters {
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.ID, d.Source, time.Since(d.At).Round(time.Second), d.Subject, d.Reason)
					}
					if page.Next != 0 {
						fmt.Fprintf(tw, "more: --after %d\n", page.Next)
					}
					return tw.Flush()
				},
			},
			{
				Name: "retry", Usage: "send dead letters back where they came from (idempotent); they leave the dead-letter stream",
				ArgsUsage: "ID...",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "every dead letter (of --source)"},
					&cli.StringFlag{Name: "source", Usage: "with --all: only those of one pipeline"},
				},
				Action: action(api.SubjectDeadLettersRetry),
			},
			{
				Name: "drop", Usage: "delete dead letters for good (recorded)", ArgsUsage: "ID...",
				Action: action(api.SubjectDeadLettersDrop),
			},
		},
	}
}
