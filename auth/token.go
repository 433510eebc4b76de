package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/order"
)

// MaxSubjectLength bounds a token's subject: it becomes the customer's
// user name and, under the longest role prefix, who acted (order.MaxNameLength).
const MaxSubjectLength = order.MaxNameLength - len("support:")

// DefaultAudience is the audience oms tokens are for.
const DefaultAudience = "oms"

// Claims are a token's claims: the registered ones and the principal's role.
type Claims struct {
	jwt.RegisteredClaims
	Role Role `json:"role"`
}

// Keys say which tokens to trust: signed with Secret (HS256), or with one of
// the public keys of a JWKS document (RS256, ES256, EdDSA, ...), for
// Audience and, if set, from Issuer.
type Keys struct {
	Secret   []byte
	JWKS     []byte
	Audience string
	Issuer   string
}

// Verifier checks bearer tokens.
type Verifier struct {
	keyfunc  jwt.Keyfunc
	methods  []string
	audience string
	issuer   string
}

// NewVerifier returns a verifier of tokens signed with k.
func NewVerifier(k Keys) (*Verifier, error) {
	v := &Verifier{audience: k.Audience, issuer: k.Issuer}
	if v.audience == "" {
		v.audience = DefaultAudience
	}
	switch {
	case len(k.JWKS) > 0:
		set, err := keyfunc.NewJWKSetJSON(k.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		v.keyfunc = set.Keyfunc
		v.methods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	case len(k.Secret) >= 32:
		secret := k.Secret
		v.keyfunc = func(*jwt.Token) (any, error) { return secret, nil }
		v.methods = []string{"HS256"}
	default:
		return nil, errors.New("no token keys: give a JWKS document or a secret of at least 32 bytes")
	}
	return v, nil
}

// Verify returns the principal a valid token names. Every failure is an
// api.ErrUnauthenticated naming what was wrong.
func (v *Verifier) Verify(token string) (Principal, error) {
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithAudience(v.audience),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30 * time.Second)}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	var c Claims
	if _, err := jwt.ParseWithClaims(token, &c, v.keyfunc, opts...); err != nil {
		return Principal{}, fmt.Errorf("token: %v: %w", err, api.ErrUnauthenticated)
	}
	role, err := ParseRole(string(c.Role))
	if err != nil {
		return Principal{}, fmt.Errorf("token: %v: %w", err, api.ErrUnauthenticated)
	}
	switch {
	case strings.TrimSpace(c.Subject) == "":
		return Principal{}, fmt.Errorf("token: no subject: %w", api.ErrUnauthenticated)
	case len(c.Subject) > MaxSubjectLength || !utf8.ValidString(c.Subject) || strings.IndexFunc(c.Subject, unicode.IsControl) >= 0:
		return Principal{}, fmt.Errorf("token: the subject must be at most %d bytes of printable UTF-8: %w", MaxSubjectLength, api.ErrUnauthenticated)
	}
	return Principal{Subject: c.Subject, Role: role}, nil
}

// Issue signs a token for p with an HS256 secret, valid for ttl: what
// `oms token issue` hands a developer, and tests use.
func Issue(secret []byte, p Principal, ttl time.Duration, audience, issuer string) (string, error) {
	if audience == "" {
		audience = DefaultAudience
	}
	now := time.Now()
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: p.Subject, Audience: jwt.ClaimStrings{audience},
		Issuer: issuer, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}, Role: p.Role}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// ReadKeys loads the keys a node trusts from files: a JWKS document, or
// else a secret.
func ReadKeys(jwksFile, secretFile, audience, issuer string) (Keys, error) {
	k := Keys{Audience: audience, Issuer: issuer}
	var err error
	switch {
	case jwksFile != "":
		k.JWKS, err = os.ReadFile(jwksFile)
	case secretFile != "":
		k.Secret, err = os.ReadFile(secretFile)
		k.Secret = []byte(strings.TrimSpace(string(k.Secret)))
	default:
		return k, errors.New("no token keys configured")
	}
	return k, err
}
