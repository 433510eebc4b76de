package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/bench"
	"github.com/oms-project/oms/config"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "run a complete single node with simulators and drive orders through the whole lifecycle",
		Subcommands: []*cli.Command{{
			Name:  "restart",
			Usage: "store N orders, then time a restart until ready and until the first command on a stored order",
			Flags: append([]cli.Flag{
				&cli.IntFlag{Name: "orders", Value: 1_000_000, Usage: "orders to store before the restart"},
				&cli.BoolFlag{Name: "lifecycle", Usage: "store each order's whole life (placed, stock held, paid, in transit, delivered) instead of its placement alone"},
				&cli.StringFlag{Name: "data-dir", Usage: "keep the data here (default: a temporary directory, removed)"},
				jsonFlag(),
			}, profileFlags...),
			Action: func(c *cli.Context) error {
				stop, err := startProfiles(c)
				if err != nil {
					return err
				}
				defer stop()
				log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
				var progress io.Writer
				if isTerminal(os.Stderr) {
					progress = os.Stderr
				}
				res, err := bench.RunRestart(c.Context, bench.RestartOptions{Orders: c.Int("orders"), Lifecycle: c.Bool("lifecycle"),
					DataDir: c.String("data-dir")}, log, progress)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return json.NewEncoder(os.Stdout).Encode(res)
				}
				fmt.Printf("revision %s\nstored orders %d, %d events (written in %.1fs)\nrestart: ready in %.2fs, first command on a stored order answered at %.2fs\n",
					res.Revision, res.StoredOrders, res.StoredEvents, res.WriteSeconds, res.ReadySeconds, res.FirstCommandS)
				fmt.Printf("read model caught up on them at %.2fs; heap live then %.1f MB (%.0f bytes per stored order), scanned by the collector %.1f MB\n",
					res.CaughtUpS, res.LiveHeapMB, res.LiveHeapMB*(1<<20)/float64(max(res.StoredOrders, 1)), res.ScannableHeapMB)
				return nil
			},
		}},
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "orders", Value: 10_000, Usage: "orders to place"},
			&cli.Float64Flag{Name: "rate", Usage: "orders per second (0: as fast as possible)"},
			&cli.IntFlag{Name: "concurrency", Value: 256, Usage: "placements in flight"},
			&cli.IntFlag{Name: "skus", Value: 1000, Usage: "catalogue size (1: one hot SKU)"},
			&cli.IntFlag{Name: "lines", Value: 1, Usage: "lines per order"},
			&cli.Float64Flag{Name: "payment-failure", Value: 0.05, Usage: "share of payments that fail"},
			&cli.IntFlag{Name: "partitions", Value: 64, Usage: "order partitions of the node under test"},
			&cli.StringFlag{Name: "data-dir", Usage: "keep the data here (default: a temporary directory, removed)"},
			&cli.StringFlag{Name: "target", Usage: "drive a running deployment at this NATS URL instead of starting a node (it must run the simulated providers); CPU figures then cover only the load generator"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
		}, append(tuningFlags(), profileFlags...)...),
		Action: func(c *cli.Context) error {
			tuneGC()
			tuning := config.DefaultTuning()
			readTuning(c, &tuning)
			o := bench.Options{Orders: c.Int("orders"), Rate: c.Float64("rate"), Concurrency: c.Int("concurrency"),
				SKUs: c.Int("skus"), Lines: c.Int("lines"), PaymentFailure: c.Float64("payment-failure"),
				Partitions: c.Int("partitions"), Tuning: &tuning, DataDir: c.String("data-dir"), Server: c.String("target")}
			if o.Server != "" {
				connect, err := clientAuth(c)
				if err != nil {
					return err
				}
				o.Connect = connect
			}
			if err := o.Validate(); err != nil {
				return err // before the table: the run did not start
			}
			if isTerminal(os.Stderr) {
				o.Progress = os.Stderr
			}
			stop, err := startProfiles(c)
			if err != nil {
				return err
			}
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			res, err := bench.Run(c.Context, o, log)
			if c.Bool("json") {
				if jerr := json.NewEncoder(os.Stdout).Encode(res); jerr != nil {
					return jerr
				}
			} else {
				printResult(os.Stdout, res)
			}
			return err
		},
	}
}

func printResult(w io.Writer, r bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "revision\t%s\n", r.Revision)
	fmt.Fprintf(tw, "orders\t%d (rate %s, concurrency %d, %d skus, %d line(s), payment failure %.0f%%)\n",
		r.Orders, rateText(r.Rate), r.Concurrency, r.SKUs, r.Lines, r.PaymentFailure*100)
	fmt.Fprintf(tw, "finished\t%d completed, %d cancelled, %d errors in %.2fs\n", r.Completed, r.Cancelled, r.Errors, r.Seconds)
	fmt.Fprintf(tw, "completed orders/s\t%.0f\n", r.CompletedPerSecond)
	fmt.Fprintf(tw, "placed orders/s\t%.0f (%.0f reservations/s)\n", r.PlacedPerSecond, r.ReservationsPerSec)
	fmt.Fprintf(tw, "place→ack ms\tp50 %.2f  p99 %.2f  max %.2f\n", r.AckP50, r.AckP99, r.AckMax)
	fmt.Fprintf(tw, "place→completed ms\tp50 %.2f  p99 %.2f  max %.2f\n", r.DoneP50, r.DoneP99, r.DoneMax)
	fmt.Fprintf(tw, "CPU s / 1,000 orders\t%.3f\n", r.CPUSecondsPer1000)
	fmt.Fprintf(tw, "collector\t%d cycles, %.0f%% of the CPU (assists %.0f%%), %.0f KB allocated / order\n",
		r.GCCycles, 100*r.GCShare, 100*r.GCAssistShare, r.AllocatedKBPerOrder)
	fmt.Fprintf(tw, "live heap\t%.0f MB at the end, %.0f MB of it scanned for pointers\n", r.LiveHeapMB, r.ScannableHeapMB)
	if r.StoredPerOrder > 0 {
		names := slices.Sorted(maps.Keys(r.StoredPerOrderByStream))
		parts := make([]string, 0, len(names))
		for _, name := range names {
			parts = append(parts, fmt.Sprintf("%s %.1f", name, r.StoredPerOrderByStream[name]))
		}
		fmt.Fprintf(tw, "stored messages / order\t%.1f (%s)\n", r.StoredPerOrder, strings.Join(parts, ", "))
	}
	if len(r.MessagesPerOrderByConnection) > 0 {
		names := slices.Sorted(maps.Keys(r.MessagesPerOrderByConnection))
		parts := make([]string, 0, len(names))
		for _, name := range names {
			c := r.MessagesPerOrderByConnection[name]
			parts = append(parts, fmt.Sprintf("%q %.1f/%.1f", name, c.Sent, c.Received))
		}
		fmt.Fprintf(tw, "messages / order\tsent %.1f, received %.1f (by connection, sent/received: %s)\n",
			r.SentPerOrder, r.ReceivedPerOrder, strings.Join(parts, ", "))
	}
	_ = tw.Flush()
}

func rateText(r float64) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f/s", r)
}

var profileFlags = []cli.Flag{
	&cli.StringFlag{Name: "cpuprofile", Usage: "write a pprof CPU profile of the run to this file"},
	&cli.StringFlag{Name: "memprofile", Usage: "write a pprof allocation profile of the run to this file"},
	&cli.StringFlag{Name: "trace", Usage: "write a runtime execution trace of the run to this file (go tool trace)"},
}

// startProfiles starts what profileFlags ask for; the returned func stops
// them and writes the files.
func startProfiles(c *cli.Context) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	create := func(flag string) (*os.File, error) {
		f, err := os.Create(c.String(flag))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		stops = append(stops, func() { _ = f.Close() })
		return f, nil
	}
	for _, p := range []struct {
		flag  string
		start func(io.Writer) error
		stop  func()
	}{{"cpuprofile", pprof.StartCPUProfile, pprof.StopCPUProfile}, {"trace", trace.Start, trace.Stop}} {
		if c.String(p.flag) == "" {
			continue
		}
		f, err := create(p.flag)
		if err != nil {
			return stop, err
		}
		if err := p.start(f); err != nil {
			return stop, fmt.Errorf("%s: %w", p.flag, err)
		}
		stops = append(stops, p.stop)
	}
	if c.String("memprofile") != "" {
		// The allocations made until the end of the run (pprof's allocs
		// profile: where the run allocated, not what is still live).
		f, err := create("memprofile")
		if err != nil {
			return stop, err
		}
		stops = append(stops, func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "memprofile:", err)
			}
		})
	}
	return stop, nil
}
