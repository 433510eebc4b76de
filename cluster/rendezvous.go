package cluster

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// rendezvous picks, for partition p, the member with the highest hash of
// (member, p): highest random weight hashing. Every node computes the same
// owner from the same view, and a join or a loss moves only the partitions
// that must move.
func rendezvous(members []string, p int) string {
	best, bestScore := "", uint64(0)
	for _, name := range members {
		if s := score(name, p); best == "" || s > bestScore {
			best, bestScore = name, s
		}
	}
	return best
}

func score(member string, p int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(member))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(strconv.Itoa(p)))
	// fnv's low bits mix poorly for similar inputs; finish with a splitmix
	// step so partitions spread evenly.
	return mix(h.Sum64())
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ranking returns members in rendezvous order for partition p: the owner
// first, then who would own p if the owner were gone, and so on.
func ranking(members []string, p int) []string {
	out := slices.Clone(members)
	slices.SortFunc(out, func(a, b string) int {
		sa, sb := score(a, p), score(b, p)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}
