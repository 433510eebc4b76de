// Package latency summarises measured durations as `oms bench` reports
// them. It imports nothing of oms, so that the PostgreSQL yardstick
// (examples/pgbaseline, a module of its own) reports its figures the same
// way without depending on the node.
package latency

import (
	"slices"
	"time"
)

// Summary sorts ds and returns its median, 99th percentile and maximum, in
// milliseconds (all 0 for none).
func Summary(ds []time.Duration) (p50, p99, maxMs float64) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return ms(at(0.50)), ms(at(0.99)), ms(ds[len(ds)-1])
}
