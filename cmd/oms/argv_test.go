package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestInterspersedFlags: client flags are read before or after the
// subcommand, a command's flags before or after its arguments; negative
// numbers and what follows "--" stay arguments, unknown flags stay where
// the parser will name them.
func TestInterspersedFlags(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"oms order get ID --server nats://h:1", "oms --server nats://h:1 order get ID"},
		{"oms stock set SKU-1 5 --server=nats://h:1 --timeout 3s", "oms --server=nats://h:1 --timeout 3s stock set SKU-1 5"},
		{"oms order cancel ID --reason late -s nats://h:1", "oms -s nats://h:1 order cancel --reason late ID"},
		{"oms replay OMS_ORDERS --subject oms.copy", "oms replay --subject oms.copy OMS_ORDERS"},
		{"oms --server nats://h:1 order list --json", "oms --server nats://h:1 order list --json"},
		{"oms order list --json --status order_paid --nkey admin.nk", "oms --nkey admin.nk order list --json --status order_paid"},
		{"oms status --json --server nats://h:1", "oms --server nats://h:1 status --json"},
		{"oms stock set SKU-1 -5", "oms stock set SKU-1 -5"},
		{"oms order get -- --not-a-flag", "oms order get -- --not-a-flag"},
		{"oms order get ID --bogus", "oms order get --bogus ID"},
		{"oms --bogus order get ID", "oms --bogus order get ID"},
		{"oms dlq retry 3 4 --server nats://h:1", "oms --server nats://h:1 dlq retry 3 4"},
		{"oms serve --data-dir d --nats-listen 127.0.0.1:0", "oms serve --data-dir d --nats-listen 127.0.0.1:0"},
	} {
		got := strings.Join(interspersed(newApp(), strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%s\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}

// TestEveryFlagIsDescribed: each flag of each command says what it is,
// --help states a default at most once, and never "(default: false)".
func TestEveryFlagIsDescribed(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	check := func(path string, flags []cli.Flag) {
		for _, f := range flags {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok || strings.TrimSpace(df.GetUsage()) == "" {
				t.Errorf("%s --%s has no description", path, f.Names()[0])
				continue
			}
			help := flagHelp(f)
			if strings.Count(help, "(default:") > 1 || strings.Contains(help, "(default: false)") {
				t.Errorf("%s --%s: %s", path, f.Names()[0], help)
			}
		}
	}
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Usage == "" {
				t.Errorf("%s %s has no description", path, c.Name)
			}
			check(path+" "+c.Name, c.Flags)
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	app := newApp()
	check("oms", app.Flags)
	walk("oms", app.Commands)
}
