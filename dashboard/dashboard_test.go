package dashboard

import (
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func histogram(counts ...uint64) *dto.Histogram {
	bounds := []float64{0.001, 0.01, 0.1}
	h := &dto.Histogram{}
	var total uint64
	for i, b := range bounds {
		total += counts[i]
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(total)})
	}
	total += counts[len(bounds)]
	h.SampleCount = proto.Uint64(total)
	return h
}

// TestQuantileOfTheInterval: quantiles are of the samples taken between
// two reads only, interpolated in their bucket; no samples, no figure.
func TestQuantileOfTheInterval(t *testing.T) {
	before := histogram(100, 0, 0, 0) // a hundred fast ones, earlier
	after := histogram(100, 10, 0, 0) // then ten between 1 and 10 ms
	p50 := quantileMs(before, after, 0.5)
	if p50 == nil || math.Abs(*p50-5.5) > 1e-9 {
		t.Fatalf("p50 %v, want 5.5 ms (the middle of the 1-10 ms bucket's samples)", p50)
	}
	if q := quantileMs(after, after, 0.5); q != nil {
		t.Fatalf("no new samples: %v, want none", *q)
	}
	slow := histogram(0, 0, 0, 3) // past the last bound
	if q := quantileMs(nil, slow, 0.99); q == nil || *q != 100 {
		t.Fatalf("p99 in +Inf: %v, want the last bound (100 ms)", q)
	}
}
