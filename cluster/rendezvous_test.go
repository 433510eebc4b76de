package cluster

import (
	"fmt"
	"slices"
	"testing"
)

// TestRendezvousMovesOnlyWhatMust: partitions spread roughly evenly, a
// join takes partitions only for the newcomer, and a loss moves only the
// lost member's partitions.
func TestRendezvousMovesOnlyWhatMust(t *testing.T) {
	const parts = 64
	three := []string{"oms-1", "oms-2", "oms-3"}
	four := append([]string{}, three...)
	four = append(four, "oms-4")
	count := map[string]int{}
	for p := range parts {
		a, b := rendezvous(three, p), rendezvous(four, p)
		count[a]++
		if a != b && b != "oms-4" {
			t.Fatalf("partition %d moved from %s to %s on a join", p, a, b)
		}
		two := []string{"oms-1", "oms-3"}
		if c := rendezvous(two, p); a != "oms-2" && c != a {
			t.Fatalf("partition %d moved from %s to %s when oms-2 left", p, a, c)
		}
	}
	for _, n := range three {
		if count[n] < parts/3-10 || count[n] > parts/3+10 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
	for p := range parts {
		r := ranking(four, p)
		if r[0] != rendezvous(four, p) || r[1] != rendezvous(slices.DeleteFunc(slices.Clone(four), func(s string) bool { return s == r[0] }), p) {
			t.Fatalf("partition %d: ranking %v does not match the owners after a loss", p, r)
		}
	}
	if fmt.Sprint(rendezvous(nil, 3)) != "" {
		t.Fatal("no members must mean no owner")
	}
}
