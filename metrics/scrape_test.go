package metrics

import (
	"testing"
)

// TestFiguresDropWhatTheyDoNotDeclare: a sample of an undeclared name or
// with the wrong labels is left out of the scrape; the others are in it.
func TestFiguresDropWhatTheyDoNotDeclare(t *testing.T) {
	m := New()
	m.Figures([]Figure{{Name: "things", Help: "things", Labels: []string{"kind"}}}, func(emit Emit) {
		emit("things", 2, "a")
		emit("things", 3)          // a label missing
		emit("undeclared", 1, "b") // not a figure of the set
	})
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "oms_things" {
			if len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != 2 {
				t.Fatalf("oms_things: %v", f.Metric)
			}
			return
		}
	}
	t.Fatal("oms_things missing")
}
