// Package poll waits in tests for a condition with a deadline, instead of
// sleeping for a fixed time and hoping.
//
// It imports nothing of oms.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every few milliseconds until it holds, and fails the
// test with cond's last description if it does not hold within the limit.
func Until(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last: %s", what, within, last)
}
