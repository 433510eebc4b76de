// Package auth says who a caller of the HTTP edge is and what they may do:
// the roles, the principal a bearer token names, the verification of those
// tokens (JWT, against a shared secret or a JWKS file), the tokens a
// development setup issues itself, and the signatures of provider webhooks.
//
// It may import api (for the errors it answers with), nothing else of oms.
package auth

import (
	"context"
	"fmt"
	"slices"
)

// Role is what a principal may do.
type Role string

// The roles. A customer places orders as itself and sees, cancels and
// updates only its own; support reads every order and cancels or updates
// any with a reason; admin also sets stock, rebuilds and handles dead
// letters; monitor only reads the node's metrics (a Prometheus scraper's
// token: it sees figures, never an order).
const (
	RoleCustomer Role = "customer"
	RoleSupport  Role = "support"
	RoleAdmin    Role = "admin"
	RoleMonitor  Role = "monitor"
)

// Roles lists every role.
var Roles = []Role{RoleCustomer, RoleSupport, RoleAdmin, RoleMonitor}

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want customer, support, admin or monitor)", s)
}

// Principal is the caller a verified token names.
type Principal struct {
	Subject string
	Role    Role
}

// By is the principal's name in an order's audit trail: a customer's own
// subject, or the staff member's subject under their role.
func (p Principal) By() string {
	if p.Role == RoleCustomer {
		return p.Subject
	}
	return string(p.Role) + ":" + p.Subject
}

// IsCustomer reports whether the principal acts for itself only.
func (p Principal) IsCustomer() bool { return p.Role == RoleCustomer }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
