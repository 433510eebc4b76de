package order

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
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

// TestFingerprintsAreStable: a command's fingerprint is what earlier
// versions stored in its event (from encoding/json's bytes); a retry after
// an upgrade must match it, not conflict, whatever the encoder is now.
// Strings carry what encoders are known to differ on: HTML characters,
// control and non-ASCII characters, invalid UTF-8, U+2028.
func TestFingerprintsAreStable(t *testing.T) {
	odd := "<b>&amp;</b> \u00e9\u4e2d \x01\t\"\\ \u2028\u2029 \xff end"
	cmds := commands()
	place := placeCmd()
	place.Notes, place.DeliveryInstructions, place.Destination.Address = odd, odd, odd
	place.PromotionCodes = []string{odd, "BF26"}
	cmds["place_odd"] = place
	cmds["cancel_odd"] = Cancel{Meta: meta("cancel-2"), Reason: odd}
	cmds["update_odd"] = Update{Meta: meta("update-2"), Notes: &odd, Destination: &place.Destination}
	cmds["pay_odd"] = RecordPayment{Meta: meta("pay-5"), Type: PaymentSucceeded, Amount: 1, Currency: "EUR", Provider: odd, Reference: odd}
	cmds["delivery_odd"] = RecordDelivery{Meta: meta("dlv-4"), Type: DeliveryInTransit, Provider: odd, TrackingNumber: odd}
	for name, c := range cmds {
		var v any
		switch c := c.(type) {
		case Place, Update, RecordPayment, RecordDelivery:
			// The command itself, its metadata cleared.
			bare := reflect.New(reflect.TypeOf(c)).Elem()
			bare.Set(reflect.ValueOf(c))
			bare.FieldByName("Meta").SetZero()
			v = bare.Interface()
		case Cancel:
			v = c.Reason
		case RecordStock:
			v = c.Held
		case ExpireReservation:
			if c.Fingerprint() != "expire" {
				t.Errorf("%s: fingerprint %q", name, c.Fingerprint())
			}
			continue
		default:
			t.Fatalf("%s: a command this test does not know (%T): add it", name, c)
		}
		stored, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(stored)
		if want := hex.EncodeToString(sum[:8]); c.Fingerprint() != want {
			t.Errorf("%s: fingerprint %s, stored by earlier versions as %s (from %s)", name, c.Fingerprint(), want, stored)
		}
	}
}
