package jetstream

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSeqSetAgreesWithASortedList: adds (in and out of order, across
// words, below the first), removals and removals up to a sequence, checked
// after each step against a sorted list of what should be in.
func TestSeqSetAgreesWithASortedList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s seqSet
	var want []uint64
	check := func(step string) {
		t.Helper()
		if s.n != len(want) {
			t.Fatalf("%s: %d in the set, want %d", step, s.n, len(want))
		}
		if len(want) == 0 {
			if s.min() != 0 || s.max() != 0 {
				t.Fatalf("%s: empty set with min %d, max %d", step, s.min(), s.max())
			}
			return
		}
		if s.min() != want[0] || s.max() != want[len(want)-1] {
			t.Fatalf("%s: min %d, max %d, want %d, %d", step, s.min(), s.max(), want[0], want[len(want)-1])
		}
	}
	base := uint64(1000)
	for range 5000 {
		switch op := r.IntN(10); {
		case op < 6: // mostly close together and rising, as spilled events are
			seq := base + uint64(r.IntN(300))
			base += uint64(r.IntN(3))
			if op == 0 && base > 500 {
				seq = base - uint64(r.IntN(500)) // below what is in
			}
			s.add(seq)
			if i, found := slices.BinarySearch(want, seq); !found {
				want = slices.Insert(want, i, seq)
			}
		case op < 9 && len(want) > 0:
			seq := want[r.IntN(len(want))]
			if !s.remove(seq) {
				t.Fatalf("remove %d: not found", seq)
			}
			i, _ := slices.BinarySearch(want, seq)
			want = slices.Delete(want, i, i+1)
			if s.remove(seq) {
				t.Fatalf("remove %d twice", seq)
			}
		case len(want) > 0:
			upTo := want[r.IntN(len(want))]
			s.removeUpTo(upTo)
			i, found := slices.BinarySearch(want, upTo)
			if found {
				i++
			}
			want = want[i:]
		}
		check("step")
	}
	for len(want) > 0 {
		if !s.remove(want[0]) {
			t.Fatalf("remove %d: not found", want[0])
		}
		want = want[1:]
		check("emptying")
	}
}
