package command_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/cluster"
	"github.com/oms-project/oms/command"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// refusing is an order actor that answers every request with err.
type refusing struct{ err error }

func (r refusing) Handle(context.Context, any) any { return actors.OrderResult{Err: r.err} }
func (refusing) Passivate()                        {}

// member is one node's write side on a shared server, its actors all
// answering with err.
func member(t *testing.T, env *natstest.Env, name string, err error) (*command.Commands, *cluster.Cluster) {
	t.Helper()
	cl, jerr := cluster.Join(env.Ctx, env.NC, env.JS, cluster.Options{Self: name, Roles: []string{"command"},
		Partitions: 8, Replicas: 1, Heartbeat: 100 * time.Millisecond, MemberTimeout: time.Second,
		MemberKeyTTL: time.Minute, FloorInterval: time.Second, Backoff: jetstream.Backoff{Base: 10 * time.Millisecond, Max: time.Second},
		Log: quiet})
	if jerr != nil {
		t.Fatal(jerr)
	}
	t.Cleanup(cl.Close)
	system := actors.NewSystem(quiet)
	t.Cleanup(system.Shutdown)
	host := func() *actors.Host {
		h := actors.NewHost(system, func(string) actors.Handler { return refusing{err} }, actors.HostOptions{Idle: time.Minute, Mailbox: 16})
		t.Cleanup(h.Stop)
		return h
	}
	cmds, cerr := command.New(command.Deps{Cluster: cl, Orders: host(), SKUs: host(),
		Limiter: endpoint.NewLimiter(16, 5*time.Second), Log: quiet})
	if cerr != nil {
		t.Fatal(cerr)
	}
	t.Cleanup(cmds.Stop)
	return cmds, cl
}

// TestForwardedCallsKeepTheirErrorKind: an order command sent to a node
// that does not own the order is decided by the owner, and the owner's
// refusal arrives with its kind: a 503 stays a 503 (retryable), a 409 a
// 409, and errors.Is matches the sentinel on the calling node.
func TestForwardedCallsKeepTheirErrorKind(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	a, ca := member(t, env, "a", errors.New("a decides nothing in this test"))
	for _, c := range []struct {
		name     string
		err      error
		code     int
		sentinel error
	}{
		{"busy", actors.ErrBusy, 503, api.ErrUnavailable},
		{"deadline", fmt.Errorf("append: %w", context.DeadlineExceeded), 503, nil},
		{"illegal", &order.TransitionError{Action: "cancel", Status: order.StatusCompleted}, 409, order.ErrIllegalTransition},
		{"unknown", fmt.Errorf("order: %w", order.ErrNotFound), 404, order.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, cb := member(t, env, "b-"+c.name, c.err)
			poll.Until(t, 10*time.Second, "a sees b", func() (bool, string) {
				st := ca.Status()
				return len(st.Members) == 2, fmt.Sprint(st.Members)
			})
			// An order b owns.
			id := ""
			for i := 0; id == ""; i++ {
				if k := fmt.Sprintf("00000000-0000-4000-8000-%012d", i); ca.Owner(k) == cb.Self() {
					id = k
				}
			}
			_, err := a.Order(env.Ctx, order.Cancel{Meta: order.Meta{ID: "c1", OrderID: id, At: time.Now(), By: "t"}})
			if api.CodeOf(err) != c.code || (c.sentinel != nil && !errors.Is(err, c.sentinel)) {
				t.Fatalf("forwarded %v: got %v (code %d)", c.err, err, api.CodeOf(err))
			}
			cb.Close()
			poll.Until(t, 10*time.Second, "b gone", func() (bool, string) {
				st := ca.Status()
				return len(st.Members) == 1, fmt.Sprint(st.Members)
			})
		})
	}
}
