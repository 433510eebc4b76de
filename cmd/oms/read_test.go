package main

import "testing"

// TestReportPrintsEachCurrencyInItsOwnDecimals: revenue is kept in minor
// units, and a yen has none, a dinar three.
func TestReportPrintsEachCurrencyInItsOwnDecimals(t *testing.T) {
	for _, c := range []struct {
		in   map[string]int64
		want string
	}{
		{map[string]int64{"EUR": 199900}, "1999.00 EUR"},
		{map[string]int64{"JPY": 5000, "KWD": 12345, "EUR": -50}, "-0.50 EUR 5000 JPY 12.345 KWD"},
		{map[string]int64{"USD": -123456}, "-1234.56 USD"},
		{map[string]int64{}, "-"},
	} {
		if got := money(c.in); got != c.want {
			t.Errorf("money(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
