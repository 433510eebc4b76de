// Command oms is the order management system: one binary that serves (with
// embedded NATS or against a NATS cluster) and is also the CLI client.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/bench"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	bench.Version = version
	app := &cli.App{
		Name:    "oms",
		Usage:   "order management system on NATS JetStream",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Value: "nats://127.0.0.1:4222",
				EnvVars: []string{"OMS_SERVER"}, Usage: "NATS URL of a running oms (client commands)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "request timeout (client commands)"},
		},
		Commands: []*cli.Command{serveCommand(), orderCommand(), stockCommand(), statusCommand(), clusterCommand(), reportCommand(), replayCommand(), rebuildCommand(), benchCommand()},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "oms:", err)
		os.Exit(1)
	}
}
