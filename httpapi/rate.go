package httpapi

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/oms-project/oms/api"
)

// rates keeps one token bucket per caller and operation kind, forgetting
// the buckets of callers silent for a while so that memory stays bounded.
type rates struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// forget is how long a silent caller's bucket is kept.
const forget = 10 * time.Minute

func newRates(perSecond float64, burst int) *rates {
	return &rates{limit: rate.Limit(perSecond), burst: max(burst, 1), buckets: map[string]*bucket{}, swept: time.Now()}
}

// rateLimited is a caller over its rate, and when to try again.
type rateLimited struct{ after time.Duration }

func (r *rateLimited) Error() string {
	return fmt.Sprintf("rate limit exceeded; try again in %s", r.after.Round(time.Millisecond))
}
func (r *rateLimited) Unwrap() error { return api.ErrTooManyRequests }

// allow takes one request of caller from its bucket, or says when it may
// come back.
func (r *rates) allow(caller string) error {
	if r.limit <= 0 {
		return nil
	}
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.swept) > forget {
		for k, b := range r.buckets {
			if now.Sub(b.used) > forget {
				delete(r.buckets, k)
			}
		}
		r.swept = now
	}
	b, ok := r.buckets[caller]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[caller] = b
	}
	b.used = now
	r.mu.Unlock()
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &rateLimited{after: d}
	}
	return nil
}
