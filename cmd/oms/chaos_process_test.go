package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oms-project/oms/chaos"
)

// TestChaosShortRound is `make chaos` cut short: one kill -9 of a single
// node under load, and one node of three frozen past its member timeout
// and woken, each followed by the invariant checker on the streams.
func TestChaosShortRound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress strings.Builder
	o := chaos.Options{Binary: omsBinary, Dir: t.TempDir(), SingleRounds: 1, ClusterRounds: 1,
		Faults: []string{chaos.FaultFreeze}, Orders: 60, Rate: 20, ReservationTTL: 10 * time.Second,
		Settle: 3 * time.Minute, Freeze: 6 * time.Second, Seed: uint64(time.Now().UnixNano()), Progress: &progress}
	rep, err := chaos.Run(ctx, o)
	var table strings.Builder
	rep.Table(&table)
	t.Logf("seed %d\n%s\n%s", o.Seed, progress.String(), table.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 2 || !rep.OK() {
		// The directory goes with the test: show the end of each log.
		logs, _ := filepath.Glob(filepath.Join(rep.Dir, "*", "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			lines := strings.Split(string(data), "\n")
			t.Logf("%s (last lines):\n%s", l, strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		t.Fatal("chaos rounds failed")
	}
}
