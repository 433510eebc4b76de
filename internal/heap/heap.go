// Package heap reads what the heap keeps: for `oms bench`'s figures and
// the benchmarks that measure memory per thing (an active order, a held
// event).
//
// It imports nothing of oms.
package heap

import (
	"runtime"
	"runtime/metrics"
)

// Kept runs two collections and returns, in bytes, the heap the second
// found live and the part of that the collector scans for pointers (a
// mark phase lasts in proportion to it). The second counts none of what
// the first kept only because it was allocated while it marked.
func Kept() (live, scannable uint64) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// MB is n bytes in mebibytes.
func MB(n uint64) float64 { return float64(n) / (1 << 20) }
