package order

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
)

// stageStates builds every reachable stage, for fuzz targets to apply their
// input to.
func stageStates(t testing.TB) []State {
	var out []State
	for _, name := range slices.Sorted(maps.Keys(stages)) {
		out = append(out, build(t, stages[name]))
	}
	return out
}

// FuzzDecodeEvent feeds DecodeEvent stored messages. What it accepts must
// apply to every stage without panicking, leave a state every command can
// be decided against, and encode back to an event it accepts again.
func FuzzDecodeEvent(f *testing.F) {
	var s State
	cmds := commands()
	for _, name := range []string{"place", "stock_held", "pay_ok", "in_transit", "attempt_failed", "delivered", "cancel", "update"} {
		e, err := Decide(testPolicy, s, cmds[name])
		if err != nil || e == nil {
			continue
		}
		s = Evolve(s, *e)
		data, _ := json.Marshal(e)
		f.Add(data)
	}
	states := stageStates(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			if !errors.Is(err, ErrUnreadableEvent) {
				t.Fatalf("error %v is not ErrUnreadableEvent", err)
			}
			return
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		if _, err := DecodeEvent(again); err != nil {
			t.Fatalf("accepted event, encoded again, is refused: %v", err)
		}
		for _, st := range states {
			next := Evolve(st, e)
			for _, c := range commandsWithIDPrefix("fuzz-") {
				_, _ = Decide(testPolicy, next, c)
			}
		}
	})
}
