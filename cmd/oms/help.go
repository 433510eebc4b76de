package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagHelp is how --help shows one flag (urfave/cli's FlagStringer hook):
// its names, its description, "(required)" when it is, its default once
// and only when there is one (no "(default: false)" on every switch, no
// default repeated after a description that states it), and the
// environment variables that set it.
func flagHelp(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return strings.Join(f.Names(), ", ")
	}
	var names []string
	for _, n := range f.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		if df.TakesValue() {
			n += " value"
		}
		names = append(names, dash+n)
	}
	if _, repeatable := f.(*cli.StringSliceFlag); repeatable {
		names[0] += " [ " + names[0] + " ]"
	}
	usage := df.GetUsage()
	if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
		usage += " (required)"
	} else if def := df.GetDefaultText(); !zeroDefault(def) && !strings.Contains(usage, "default") {
		usage += " (default: " + def + ")"
	}
	if env := df.GetEnvVars(); len(env) > 0 {
		usage += " [$" + strings.Join(env, ", $") + "]"
	}
	return strings.Join(names, ", ") + "\t" + strings.TrimSpace(usage)
}

func zeroDefault(def string) bool {
	switch def {
	case "", "false", "0", `""`, "0s", "[]":
		return true
	}
	return false
}
