// Command oms is the order management system: one binary that serves (with
// embedded NATS or against a NATS cluster) and is also the CLI client.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/bench"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// serverGCPercent is the collector setting of the long-running commands
// (serve, bench). A node allocates mostly short-lived messages; collecting
// at five times the live heap instead of twice cut the collector's share of
// the CPU from 8% to under 3% in `oms bench`, for a heap that stays small.
// GOGC in the environment still wins.
const serverGCPercent = 400

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

// newApp is the command line: the server, the client commands, the tools.
func newApp() *cli.App {
	cli.FlagStringer = flagHelp
	return &cli.App{
		Name:     "oms",
		Usage:    "order management system on NATS JetStream",
		Version:  version,
		Flags:    clientFlags(),
		Commands: []*cli.Command{serveCommand(), orderCommand(), stockCommand(), statusCommand(), clusterCommand(), reportCommand(), explainCommand(), stuckCommand(), replayCommand(), rebuildCommand(), dlqCommand(), tokenCommand(), benchCommand(), chaosCommand()},
	}
}

func main() {
	bench.Version = version
	app := newApp()
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "oms:", err)
		os.Exit(1)
	}
}
