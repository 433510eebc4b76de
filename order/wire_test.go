package order

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeEventRefusesWhatEvolveCannotApply(t *testing.T) {
	e, err := Decide(testPolicy, State{}, placeCmd())
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(e)
	if got, err := DecodeEvent(good); err != nil || got.Placed == nil || got.Placed.Total != e.Placed.Total {
		t.Fatalf("a decided event: %+v %v", got, err)
	}
	for name, bad := range map[string]string{
		"not JSON":        `{"type":`,
		"unknown type":    `{"type":"order.teleported","v":1,"status":"order_received"}`,
		"newer version":   `{"type":"order.cancelled","v":2,"status":"order_cancelled"}`,
		"no version":      `{"type":"order.cancelled","status":"order_cancelled"}`,
		"no status":       `{"type":"order.cancelled","v":1}`,
		"placed, bare":    `{"type":"order.placed","v":1,"status":"order_received"}`,
		"paid, bare":      `{"type":"order.paid","v":1,"status":"order_paid"}`,
		"updated, bare":   `{"type":"order.updated","v":1,"status":"order_received"}`,
		"shipped, bare":   `{"type":"order.shipped","v":1,"status":"order_inTransit"}`,
		"rejected, bare":  `{"type":"order.rejected","v":1,"status":"order_paid"}`,
		"completed, bare": `{"type":"order.completed","v":1,"status":"order_completed"}`,
	} {
		if _, err := DecodeEvent([]byte(bad)); !errors.Is(err, ErrUnreadableEvent) {
			t.Errorf("%s: %v, want ErrUnreadableEvent", name, err)
		}
	}
}
