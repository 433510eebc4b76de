package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
)

// jwks is a JWKS document of one P-256 public key.
func jwks(t *testing.T, key *ecdsa.PrivateKey, kid string) []byte {
	t.Helper()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": kid,
		"alg": "ES256", "use": "sig", "x": b64(raw[1:33]), "y": b64(raw[33:])}}})
	return doc
}

func es256(t *testing.T, key *ecdsa.PrivateKey, kid string, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, role auth.Role, aud string, exp time.Duration) auth.Claims {
	return auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, Audience: jwt.ClaimStrings{aud},
		Issuer: "https://idp.example", ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp))}, Role: role}
}

// TestJWKSTokens: a token signed with a key of the identity provider's
// JWKS is trusted, with its issuer and audience; one signed with another
// key, with another issuer, without expiry, with an unknown role, or an
// HS256 token (whatever its secret) is not.
func TestJWKSTokens(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := auth.NewVerifier(auth.Keys{JWKS: jwks(t, key, "k1"), Audience: "oms", Issuer: "https://idp.example"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(es256(t, key, "k1", claims("carol", auth.RoleSupport, "oms", time.Hour)))
	if err != nil || p != (auth.Principal{Subject: "carol", Role: auth.RoleSupport}) || p.By() != "support:carol" {
		t.Fatalf("trusted token: %+v %v", p, err)
	}
	noExp := claims("carol", auth.RoleSupport, "oms", time.Hour)
	noExp.ExpiresAt = nil
	wrongIssuer := claims("carol", auth.RoleSupport, "oms", time.Hour)
	wrongIssuer.Issuer = "https://evil.example"
	hs, _ := auth.Issue([]byte(strings.Repeat("s", 32)), auth.Principal{Subject: "carol", Role: auth.RoleAdmin}, time.Hour, "oms", "https://idp.example")
	for name, tok := range map[string]string{
		"other key":    es256(t, other, "k1", claims("carol", auth.RoleSupport, "oms", time.Hour)),
		"other issuer": es256(t, key, "k1", wrongIssuer),
		"no expiry":    es256(t, key, "k1", noExp),
		"expired":      es256(t, key, "k1", claims("carol", auth.RoleSupport, "oms", -time.Hour)),
		"unknown role": es256(t, key, "k1", claims("carol", "root", "oms", time.Hour)),
		"no subject":   es256(t, key, "k1", claims("", auth.RoleSupport, "oms", time.Hour)),
		"HS256":        hs,
	} {
		if _, err := v.Verify(tok); !errors.Is(err, api.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := auth.NewVerifier(auth.Keys{Secret: []byte("short")}); err == nil {
		t.Fatal("a secret of 5 bytes was accepted")
	}
}

// TestWebhookSignatures: a signature by any active secret verifies, within
// the tolerance; any change of body, timestamp or signature does not.
func TestWebhookSignatures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	old, cur := []byte("old-secret-0123456789"), []byte("new-secret-0123456789")
	secrets := [][]byte{old, cur}
	if err := auth.VerifyWebhook(auth.SignWebhook(now, body, cur), body, secrets, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := auth.VerifyWebhook(auth.SignWebhook(now, body, []byte("x"), old), body, secrets, now, time.Minute); err != nil {
		t.Fatalf("one good v1 among several: %v", err)
	}
	sig := auth.SignWebhook(now, body, cur)
	for name, c := range map[string]struct {
		header string
		body   []byte
		at     time.Time
	}{
		"other body":      {sig, []byte(`{"id":"evt_2"}`), now},
		"too late":        {sig, body, now.Add(2 * time.Minute)},
		"too early":       {sig, body, now.Add(-2 * time.Minute)},
		"moved timestamp": {strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, now},
		"no v1":           {"t=1800000000", body, now},
		"no timestamp":    {strings.SplitN(sig, ",", 2)[1], body, now},
		"empty":           {"", body, now},
	} {
		if err := auth.VerifyWebhook(c.header, c.body, secrets, c.at, time.Minute); !errors.Is(err, api.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := auth.VerifyWebhook(sig, body, nil, now, time.Minute); err == nil {
		t.Error("verified without any secret")
	}
}

// TestWebhookSecretsFile: lines per provider, comments skipped, a bad line
// refused, and a change of the file seen without reopening it.
func TestWebhookSecretsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\nstripe whsec_aaaaaaaaaaaaaaaa\n")
	w, err := auth.NewWebhookSecrets(path)
	if err != nil || len(w.For("stripe")) != 1 || w.For("adyen") != nil {
		t.Fatalf("%v %v", w, err)
	}
	write("stripe whsec_aaaaaaaaaaaaaaaa\nstripe whsec_bbbbbbbbbbbbbbbbbbbb\n")
	if got := w.For("stripe"); len(got) != 2 {
		t.Fatalf("after the rotation: %d secrets", len(got))
	}
	write("stripe short\n")
	if _, err := auth.NewWebhookSecrets(path); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestTokenSubjectsAreBounded(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	v, err := auth.NewVerifier(auth.Keys{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{strings.Repeat("a", auth.MaxSubjectLength+1), "line\nbreak", "  "} {
		tok, err := auth.Issue(secret, auth.Principal{Subject: sub, Role: auth.RoleCustomer}, time.Hour, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); !errors.Is(err, api.ErrUnauthenticated) {
			t.Errorf("subject %q: %v, want ErrUnauthenticated", sub, err)
		}
	}
	tok, _ := auth.Issue(secret, auth.Principal{Subject: strings.Repeat("a", auth.MaxSubjectLength), Role: auth.RoleSupport}, time.Hour, "", "")
	if p, err := v.Verify(tok); err != nil || len(p.By()) > 128 {
		t.Fatalf("the longest subject: %v %v", p, err)
	}
}
