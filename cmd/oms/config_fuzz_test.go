package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/config"
)

// FuzzConfigFile feeds `oms serve --config` any file. It either yields a
// configuration that validates or an error: it never panics, and a
// setting the file gets wrong is refused rather than half taken.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("node-name: from-file\npartitions: 8\nroles: [command, query]\n"))
	f.Add([]byte("reservation-ttl: 10m\nhttp-rate: 50\nhttp-burst: 100\nsim-payment-success: 0.9\nroutes:\n  - nats-route://127.0.0.1:6222\n"))
	f.Add([]byte("partitions: -1\n"))
	f.Add([]byte("partitions: [1, 2]\nreplicas: {a: b}\n"))
	f.Add([]byte("\t- :\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "node.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var got *config.Config
		serve := serveCommand()
		serve.Action = func(c *cli.Context) error {
			cfg, err := configFrom(c)
			if err == nil {
				got = &cfg
			}
			return err
		}
		app := &cli.App{Name: "oms", Commands: []*cli.Command{serve}, Writer: io.Discard, ErrWriter: io.Discard,
			ExitErrHandler: func(*cli.Context, error) {}}
		err := app.Run([]string{"oms", "serve", "--config", path})
		if err == nil {
			if got == nil {
				t.Fatal("serve ran without a configuration")
			}
			if verr := got.Validate(); verr != nil {
				t.Fatalf("accepted a configuration that does not validate: %v", verr)
			}
		}
	})
}
