package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/chaos"
)

func chaosCommand() *cli.Command {
	d := chaos.DefaultOptions()
	return &cli.Command{
		Name: "chaos",
		Usage: "run fault rounds (kill -9, a frozen node, a lost disk) against oms serve processes on 127.0.0.1 under load, " +
			"and check the invariants from the streams after each",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "single-rounds", Value: d.SingleRounds, Usage: "rounds of kill -9 and restart on one node"},
			&cli.IntFlag{Name: "cluster-rounds", Value: d.ClusterRounds, Usage: "rounds on a cluster of three nodes"},
			&cli.StringSliceFlag{Name: "faults", Value: cli.NewStringSlice(d.Faults...),
				Usage: "cluster faults to cycle through: " + strings.Join(chaos.ClusterFaults, ", ")},
			&cli.IntFlag{Name: "orders", Value: d.Orders, Usage: "orders per round"},
			&cli.Float64Flag{Name: "rate", Value: d.Rate, Usage: "orders per second"},
			&cli.DurationFlag{Name: "reservation-ttl", Value: d.ReservationTTL, Usage: "the nodes' reservation TTL"},
			&cli.DurationFlag{Name: "settle", Value: d.Settle, Usage: "how long a round may take to satisfy every invariant after its load"},
			&cli.DurationFlag{Name: "freeze", Value: d.Freeze, Usage: "how long a frozen node stays stopped"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the load and the choice of victims"},
			&cli.StringFlag{Name: "dir", Usage: "keep the nodes' data and logs here (default: a temporary directory, removed after a run that passed)"},
		},
		Action: func(c *cli.Context) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o := chaos.Options{Binary: bin, Dir: c.String("dir"), SingleRounds: c.Int("single-rounds"),
				ClusterRounds: c.Int("cluster-rounds"), Faults: splitList(c.StringSlice("faults")), Orders: c.Int("orders"),
				Rate: c.Float64("rate"), ReservationTTL: c.Duration("reservation-ttl"), Settle: c.Duration("settle"),
				Freeze: c.Duration("freeze"), Seed: c.Uint64("seed"), Progress: os.Stderr}
			fmt.Fprintf(os.Stderr, "chaos: seed %d\n", o.Seed)
			rep, err := chaos.Run(c.Context, o)
			rep.Table(os.Stdout)
			if err != nil {
				return err
			}
			if !rep.OK() {
				return errors.New("an invariant failed; the nodes' data and logs are in " + rep.Dir)
			}
			return nil
		},
	}
}
