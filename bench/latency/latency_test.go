package latency

import (
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	for _, c := range []struct {
		n                  int
		p50, p99, maxValue float64
	}{
		{0, 0, 0, 0},
		{1, 1, 1, 1},
		{100, 51, 100, 100}, // 1..100 ms: index 50 is 51 ms, index 99 is 100 ms
		{1000, 501, 991, 1000},
	} {
		ds := make([]time.Duration, c.n)
		for i := range ds {
			ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // unsorted: Summary sorts
		}
		p50, p99, maxValue := Summary(ds)
		if p50 != c.p50 || p99 != c.p99 || maxValue != c.maxValue {
			t.Errorf("%d durations: %v %v %v, want %v %v %v", c.n, p50, p99, maxValue, c.p50, c.p99, c.maxValue)
		}
	}
}
