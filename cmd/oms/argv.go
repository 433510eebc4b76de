package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed reorders a command line so that flags may be given where
// people type them, as with kubectl and the nats CLI: the client flags
// (--server, --timeout, --nkey, --creds) before or after the subcommand,
// a command's own flags before or after its arguments. urfave/cli reads
// the app's flags only before the first command, and a command's flags
// only before its first argument; this moves each flag to where it reads
// it. Unknown flags stay where they are, so the parser still names them;
// everything after "--" is left as arguments.
func interspersed(app *cli.App, argv []string) []string {
	if len(argv) == 0 {
		return argv
	}
	var global, path, local, positional []string
	commands, own := app.Commands, []cli.Flag(nil)
	for i := 1; i < len(argv); i++ {
		tok := argv[i]
		switch {
		case tok == "--":
			positional = append(positional, argv[i:]...)
			i = len(argv)
		case isFlag(tok):
			name, _, inline := strings.Cut(strings.TrimLeft(tok, "-"), "=")
			taken := []string{tok}
			f := flagIn(own, name)
			dest := &local
			if f == nil {
				if f = flagIn(app.Flags, name); f != nil {
					dest = &global
				}
			}
			if f == nil && len(path) == 0 {
				dest = &global // before any command: the app's, or an unknown the parser will name
			}
			if f != nil && !inline && takesValue(f) && i+1 < len(argv) {
				i++
				taken = append(taken, argv[i])
			}
			*dest = append(*dest, taken...)
		default:
			if sub := commandIn(commands, tok); sub != nil && len(positional) == 0 {
				// The flags read so far are the command above's: urfave/cli
				// reads them right after its name.
				path = append(append(path, local...), tok)
				local = nil
				commands, own = sub.Subcommands, sub.Flags
				continue
			}
			positional = append(positional, tok)
		}
	}
	out := append([]string{argv[0]}, global...)
	out = append(out, path...)
	out = append(out, local...)
	return append(out, positional...)
}

// isFlag tells a flag from an argument; a negative number is an argument
// (stock levels and amounts may be typed as such).
func isFlag(tok string) bool {
	if len(tok) < 2 || tok[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(tok, 64)
	return err != nil
}

func flagIn(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func commandIn(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether a flag reads the next argument as its value
// (every kind but a boolean).
func takesValue(f cli.Flag) bool {
	if dv, ok := f.(cli.DocGenerationFlag); ok {
		return dv.TakesValue()
	}
	return true
}
