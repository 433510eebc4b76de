// Package heap reads the live heap for the benchmarks that measure what
// oms keeps in memory per thing (an active order, a held event).
//
// It imports nothing of oms.
package heap

import "runtime"

// Live is the heap in use after two collections: the second finishes
// sweeping what the first found unreachable, so what is left is live.
func Live() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
