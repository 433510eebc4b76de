package endpoint

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/order"
)

// Listener is which HTTP listener a route is served on.
type Listener int

const (
	// External serves customers (and providers' webhooks).
	External Listener = iota
	// Internal serves support, admin and operations.
	Internal
)

// Route is one way an operation is served over HTTP.
type Route struct {
	Method, Path string
	Summary      string
	Tags         []string
	Listener     Listener
	// Roles may call it; anyone else gets 403.
	Roles []auth.Role
	// register adds the route to an HTTP API, typed: Bind makes it.
	register func(api huma.API, op huma.Operation, fail Failure)
}

// Failure turns an operation's error into the HTTP error the caller gets.
type Failure func(ctx context.Context, operation string, err error) error

// Register adds the route to a huma API under op (which carries the path,
// method and documentation), answering errors through fail.
func (r Route) Register(api huma.API, op huma.Operation, fail Failure) { r.register(api, op, fail) }

// Customers is a route on the external listener for customers.
func Customers(method, path, summary string) Route {
	return Route{Method: method, Path: path, Summary: summary, Listener: External, Roles: []auth.Role{auth.RoleCustomer}}
}

// Staff is a route on the internal listener for roles (support and admin
// if none are named).
func Staff(method, path, summary string, roles ...auth.Role) Route {
	if len(roles) == 0 {
		roles = []auth.Role{auth.RoleSupport, auth.RoleAdmin}
	}
	return Route{Method: method, Path: path, Summary: summary, Listener: Internal, Roles: roles}
}

// output is an HTTP reply.
type output[Resp any] struct {
	Body Resp
}

// orderOutput is the reply of an operation answering with an order: its
// version is its entity tag.
type orderOutput struct {
	ETag string `header:"ETag" doc:"the order's version, the stream sequence of its last event"`
	Body order.Order
}

// Bind serves op on route r: bind turns the HTTP input In (its path,
// query and header parameters and its body, as huma binds them) and the
// verified caller into op's request. The request is then validated and
// handled exactly as micro's is.
func Bind[In, Req, Resp any](op *Op[Req, Resp], r Route, bind func(ctx context.Context, p auth.Principal, in *In) (Req, error)) *Op[Req, Resp] {
	call := func(ctx context.Context, operation string, in *In, fail Failure) (Resp, error) {
		var zero Resp
		p, ok := auth.PrincipalFrom(ctx)
		if !ok {
			return zero, fail(ctx, operation, fmt.Errorf("no bearer token: %w", api.ErrUnauthenticated))
		}
		if !slices.Contains(r.Roles, p.Role) {
			return zero, fail(ctx, operation, fmt.Errorf("role %s may not %s: %w", p.Role, r.Summary, api.ErrForbidden))
		}
		req, err := bind(ctx, p, in)
		if err != nil {
			return zero, fail(ctx, operation, err)
		}
		resp, err := op.Call(ctx, req)
		if err != nil {
			return zero, fail(ctx, operation, err)
		}
		return resp, nil
	}
	r.register = func(hapi huma.API, hop huma.Operation, fail Failure) {
		if _, ok := any(*new(Resp)).(order.Order); ok {
			huma.Register(hapi, hop, func(ctx context.Context, in *In) (*orderOutput, error) {
				resp, err := call(ctx, hop.OperationID, in, fail)
				if err != nil {
					return nil, err
				}
				o := any(resp).(order.Order)
				return &orderOutput{ETag: strconv.Quote(strconv.FormatUint(o.Version, 10)), Body: o}, nil
			})
			return
		}
		huma.Register(hapi, hop, func(ctx context.Context, in *In) (*output[Resp], error) {
			resp, err := call(ctx, hop.OperationID, in, fail)
			if err != nil {
				return nil, err
			}
			return &output[Resp]{Body: resp}, nil
		})
	}
	op.routes = append(op.routes, r)
	return op
}
