package auth

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
)

var fuzzNow = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// FuzzVerifyWebhook feeds VerifyWebhook any signature header and body. It
// may accept only a header that carries the body's HMAC under the secret,
// at a time within the tolerance; everything else is ErrUnauthenticated.
func FuzzVerifyWebhook(f *testing.F) {
	secret := []byte("whsec-0123456789abcdef")
	body := []byte(`{"id":"evt-1","type":"payment.succeeded"}`)
	f.Add(SignWebhook(fuzzNow, body, secret), body)
	f.Add("t=1795770000,v1=00", body)
	f.Add("t=,v1=,v1=zz", []byte{})
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifyWebhook(header, body, [][]byte{secret}, fuzzNow, 5*time.Minute)
		if err != nil {
			if !errors.Is(err, api.ErrUnauthenticated) {
				t.Fatalf("%v is not ErrUnauthenticated", err)
			}
			return
		}
		for _, part := range strings.Split(header, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k != "v1" {
				continue
			}
			sig, _ := hex.DecodeString(v)
			for _, p := range strings.Split(header, ",") {
				if tk, ts, _ := strings.Cut(strings.TrimSpace(p), "="); tk == "t" && hmac.Equal(sig, mac(secret, ts, body)) {
					return
				}
			}
		}
		t.Fatalf("accepted %q for a body it does not sign", header)
	})
}

// FuzzWebhookSecrets feeds the secrets file parser any file. What it takes
// is a provider name and secrets of at least 16 characters, none blank.
func FuzzWebhookSecrets(f *testing.F) {
	f.Add([]byte("# provider secret\npayments-sim 0123456789abcdef0123\npayments-sim fedcba9876543210fedc\n"))
	f.Add([]byte("delivery-sim short\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseWebhookSecrets(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for provider, secrets := range m {
			if provider == "" || strings.ContainsAny(provider, " \t\n") {
				t.Fatalf("provider %q taken", provider)
			}
			for _, s := range secrets {
				if len(s) < 16 || bytes.ContainsAny(s, " \t\n") {
					t.Fatalf("secret %q taken", s)
				}
			}
		}
	})
}

// FuzzVerifyToken feeds Verify any bearer token. What it accepts names a
// known role and a bounded, printable subject.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewVerifier(Keys{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []Principal{{Subject: "alice", Role: RoleCustomer}, {Subject: "bob", Role: RoleSupport}} {
		tok, err := Issue(secret, p, time.Hour, "", "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err != nil {
			if !errors.Is(err, api.ErrUnauthenticated) {
				t.Fatalf("%v is not ErrUnauthenticated", err)
			}
			return
		}
		if _, err := ParseRole(string(p.Role)); err != nil || p.Subject == "" || len(p.Subject) > MaxSubjectLength {
			t.Fatalf("accepted %+v", p)
		}
	})
}
