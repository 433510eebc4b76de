// Package chaos runs fault rounds against real `oms serve` processes on
// loopback, under load, and checks after every round, from the streams
// alone, that nothing the system acknowledged was lost or applied twice,
// that stock was neither oversold nor leaked and that money adds up. It is
// what `oms chaos` and `make chaos` run; a short run is part of the tests.
//
// It drives the system only as a user would: the binary, its NATS
// request-reply API with the admin credentials, the built-in simulated
// providers, and signals.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/simulator"
)

// Faults a cluster round can inject.
const (
	FaultKill   = "kill"   // kill -9 a random node, restart it
	FaultLeader = "leader" // kill -9 the leader of the order stream, restart it
	FaultFreeze = "freeze" // SIGSTOP a node past the member timeout, then SIGCONT
	FaultWipe   = "wipe"   // kill -9 a node, empty its data dir, restart it
)

// ClusterFaults are the cluster faults in the order rounds cycle through.
var ClusterFaults = []string{FaultKill, FaultLeader, FaultFreeze, FaultWipe}

// Options bound a chaos run.
type Options struct {
	// Binary is the oms binary the nodes run.
	Binary string
	// Dir keeps the nodes' data and logs (a temporary directory if empty,
	// removed after a run that passed).
	Dir string
	// SingleRounds of kill -9 and restart on one node.
	SingleRounds int
	// ClusterRounds on three nodes, cycling through Faults.
	ClusterRounds int
	Faults        []string
	// Orders placed per round, at Rate per second.
	Orders int
	Rate   float64
	// ReservationTTL of the nodes: how long an unpaid order can hold
	// stock, and so a bound on how long a round takes to settle.
	ReservationTTL time.Duration
	// Settle bounds how long a round may take to satisfy every invariant
	// after its load.
	Settle time.Duration
	// Freeze is how long a frozen node stays stopped: longer than the
	// member timeout (3s), so the others take its partitions.
	Freeze time.Duration
	Seed   uint64
	// Progress receives one line per step.
	Progress io.Writer
}

// DefaultOptions are those of `make chaos`.
func DefaultOptions() Options {
	return Options{SingleRounds: 3, ClusterRounds: 4, Faults: ClusterFaults, Orders: 300, Rate: 40,
		ReservationTTL: 10 * time.Second, Settle: 2 * time.Minute, Freeze: 8 * time.Second,
		Seed: uint64(time.Now().UnixNano()), Progress: io.Discard}
}

// Round is one fault round's outcome: the orders it acknowledged, its
// placement attempts and how many of them failed (a node down, a timeout:
// the storefront retried them), what the streams hold, and the verdicts,
// which are over everything the setup's streams hold at the end of the
// round, earlier rounds' orders too.
type Round struct {
	N        int
	Setup    string
	Fault    string
	Acked    int
	Attempts int
	Failed   int
	InStream int
	// DeadLetters is how many messages the dead-letter stream holds.
	DeadLetters uint64
	Took        time.Duration
	Verdicts    map[string]Verdict
}

// OK reports whether every invariant held.
func (r Round) OK() bool { return allOK(r.Verdicts) }

// Report is a run's rounds.
type Report struct {
	Rounds []Round
	Dir    string
}

// OK reports whether every round passed.
func (r Report) OK() bool {
	return len(r.Rounds) > 0 && !slices.ContainsFunc(r.Rounds, func(r Round) bool { return !r.OK() })
}

// Table writes the rounds and their invariants, one row per round, and
// the first violation of each invariant that failed.
func (r Report) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "round\tsetup\tfault\tacked\tfailed attempts\torders in stream\tdead letters\ttook")
	for _, inv := range Invariants {
		fmt.Fprint(tw, "\t"+inv)
	}
	fmt.Fprintln(tw)
	var failures []string
	for _, rd := range r.Rounds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d/%d\t%d\t%d\t%s", rd.N, rd.Setup, rd.Fault, rd.Acked, rd.Failed, rd.Attempts,
			rd.InStream, rd.DeadLetters, rd.Took.Round(100*time.Millisecond))
		for _, inv := range Invariants {
			v := rd.Verdicts[inv]
			mark := "ok"
			if !v.OK {
				mark = "FAIL"
				failures = append(failures, fmt.Sprintf("round %d, %s: %s", rd.N, inv, v.Detail))
			}
			fmt.Fprint(tw, "\t"+mark)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	for _, f := range failures {
		fmt.Fprintln(w, f)
	}
}

// Run runs the rounds and returns their report; an error means a round
// could not be run at all (a node that would not start), not that an
// invariant failed.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Binary == "" {
		return Report{}, errors.New("chaos: no oms binary to run")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Faults) == 0 {
		o.Faults = ClusterFaults
	}
	temp := o.Dir == ""
	if temp {
		dir, err := os.MkdirTemp("", "oms-chaos-")
		if err != nil {
			return Report{}, err
		}
		o.Dir = dir
	}
	rep := Report{Dir: o.Dir}
	r := &runner{o: o, rand: rand.New(rand.NewPCG(o.Seed, 3))}
	var err error
	if o.SingleRounds > 0 {
		err = r.single(ctx, &rep)
	}
	if err == nil && o.ClusterRounds > 0 {
		err = r.cluster(ctx, &rep)
	}
	if temp && err == nil && rep.OK() {
		_ = os.RemoveAll(o.Dir)
	}
	return rep, err
}

type runner struct {
	o    Options
	rand *rand.Rand
}

func (r *runner) say(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "%s chaos: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// setup is the nodes of one setup and what drives them.
type setup struct {
	name    string
	nodes   []*Node
	creds   string
	nc      *nats.Conn
	cl      *client.Client
	checker *Checker
	load    *load
	sim     *simulator.Simulator
}

func (s *setup) close() {
	if s.sim != nil {
		s.sim.Stop()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	for _, n := range s.nodes {
		if n.Running() {
			if err := n.Terminate(20 * time.Second); err != nil {
				_ = n.Kill()
			}
		}
	}
}

// logs writes each node's output next to its data, for a failed round.
func (s *setup) keepLogs(dir string) {
	for _, n := range s.nodes {
		_ = os.WriteFile(filepath.Join(dir, n.Name+".log"), []byte(n.Output()), 0o600)
	}
}

// nodeArgs are the flags every chaos node runs with.
func (r *runner) nodeArgs(name, creds string, port int) []string {
	return []string{"--node-name", name, "--credentials-dir", creds, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--simulate=false", "--status-interval", "0", "--partitions", "16", "--http-listen", "127.0.0.1:0",
		"--internal-listen", "127.0.0.1:0", "--reservation-ttl", r.o.ReservationTTL.String(), "--log-level", "warn"}
}

// connect opens the driver's connection to every node, with the admin
// credentials an operator has, reconnecting through restarts.
func (s *setup) connect(ctx context.Context, seed uint64) error {
	var urls []string
	for _, n := range s.nodes {
		urls = append(urls, n.URL)
	}
	set := &credentials.Set{Dir: s.creds}
	nkey, err := set.Connect(credentials.UserAdmin)
	if err != nil {
		return err
	}
	s.nc, err = nats.Connect(strings.Join(urls, ","), nkey, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.Name("oms-chaos"))
	if err != nil {
		return err
	}
	js, err := natsjs.New(s.nc)
	if err != nil {
		return err
	}
	s.cl = client.New(s.nc)
	s.cl.Timeout = 3 * time.Second
	s.checker = NewChecker(js)
	s.load = newLoad(s.cl, seed)
	s.sim, err = simulator.Start(ctx, s.nc, config.Simulator{PaymentSuccessRate: 0.85, DeliveryAttemptFailure: 0.2,
		MinDelay: 10 * time.Millisecond, MaxDelay: 150 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("simulated providers: %w", err)
	}
	return s.load.stock(ctx, true)
}

// round places the round's orders, injects fault once a third of them are
// through, and checks the invariants once the load is done.
func (r *runner) round(ctx context.Context, s *setup, n int, fault string, inject func() error) (Round, error) {
	began := time.Now()
	attempts0, failed0 := s.load.counts()
	acked0 := len(s.load.ackedOrders())
	r.say("round %d (%s): %d orders at %.0f/s, fault: %s", n, s.name, r.o.Orders, r.o.Rate, fault)
	_ = s.load.stock(ctx, false)
	third := make(chan struct{})
	var once sync.Once
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		s.load.run(ctx, n, 0, r.o.Orders, r.o.Rate, func(done int) {
			if done >= r.o.Orders/3 {
				once.Do(func() { close(third) })
			}
		})
		once.Do(func() { close(third) })
	}()
	<-third
	faultErr := inject()
	<-loaded
	if faultErr != nil {
		return Round{}, fmt.Errorf("round %d: %s: %w", n, fault, faultErr)
	}
	attempts, failed := s.load.counts()
	attempts, failed = attempts-attempts0, failed-failed0
	r.say("round %d: load done (%d attempts, %d failed); checking the streams", n, attempts, failed)
	v, err := s.checker.Until(ctx, s.load.ackedOrders(), r.o.Settle, time.Second)
	if err != nil {
		return Round{}, fmt.Errorf("round %d: %w", n, err)
	}
	rd := Round{N: n, Setup: s.name, Fault: fault, Acked: len(s.load.ackedOrders()) - acked0, Attempts: attempts, Failed: failed,
		InStream: s.checker.Orders(), DeadLetters: s.checker.DeadLetters(ctx), Took: time.Since(began), Verdicts: v}
	if !rd.OK() {
		r.say("round %d: an invariant failed; node logs in %s", n, r.o.Dir)
	}
	return rd, nil
}

// restart starts n again on its ports, a few times if need be.
func (r *runner) restart(ctx context.Context, n *Node) error {
	var err error
	for range 3 {
		if err = n.Start(ctx, 90*time.Second); err == nil {
			return nil
		}
		time.Sleep(time.Second) // its port may still be held by the dead process
	}
	return err
}

func (r *runner) single(ctx context.Context, rep *Report) error {
	dir := filepath.Join(r.o.Dir, "single")
	port, err := FreePort()
	if err != nil {
		return err
	}
	creds := filepath.Join(dir, "credentials")
	n := &Node{Name: "solo", Binary: r.o.Binary, DataDir: filepath.Join(dir, "data"), Args: r.nodeArgs("solo", creds, port)}
	s := &setup{name: "1 node", nodes: []*Node{n}, creds: creds}
	defer s.close()
	if err := n.Start(ctx, 90*time.Second); err != nil {
		return err
	}
	if err := s.connect(ctx, r.o.Seed); err != nil {
		return err
	}
	for i := 1; i <= r.o.SingleRounds; i++ {
		err := r.record(ctx, s, dir, rep, "kill -9 mid-load, restart", func() error {
			if err := n.Kill(); err != nil {
				return err
			}
			r.say("killed solo; restarting on the same data dir")
			return r.restart(ctx, n)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// record runs a round and adds it to rep, keeping the nodes' logs in dir
// when it could not run or an invariant failed.
func (r *runner) record(ctx context.Context, s *setup, dir string, rep *Report, fault string, inject func() error) error {
	rd, err := r.round(ctx, s, len(rep.Rounds)+1, fault, inject)
	if err != nil {
		s.keepLogs(dir)
		return err
	}
	rep.Rounds = append(rep.Rounds, rd)
	if !rd.OK() {
		s.keepLogs(dir)
	}
	return nil
}

// startCluster starts three nodes routed to each other, on fresh ports
// each attempt (a port chosen may be taken before it is bound).
func (r *runner) startCluster(ctx context.Context, dir, creds string) ([]*Node, error) {
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		var client, route [3]int
		for i := range 3 {
			var err error
			if client[i], err = FreePort(); err != nil {
				return nil, err
			}
			if route[i], err = FreePort(); err != nil {
				return nil, err
			}
		}
		nodes := make([]*Node, 3)
		for i := range 3 {
			var routes []string
			for j := range 3 {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", route[j]))
				}
			}
			name := fmt.Sprintf("p%d", i+1)
			nodes[i] = &Node{Name: name, Binary: r.o.Binary, DataDir: filepath.Join(dir, name),
				Args: append(r.nodeArgs(name, creds, client[i]), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", route[i]),
					"--routes", strings.Join(routes, ","))}
		}
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() { errs[i] = n.Start(ctx, 90*time.Second) })
		}
		wg.Wait()
		if lastErr = errors.Join(errs...); lastErr == nil {
			return nodes, nil
		}
		for _, n := range nodes {
			_ = n.Kill()
		}
		r.say("cluster start %d failed, trying other ports: %v", attempt, lastErr)
		for _, n := range nodes {
			_ = os.RemoveAll(n.DataDir)
		}
	}
	return nil, lastErr
}

func (r *runner) cluster(ctx context.Context, rep *Report) error {
	dir := filepath.Join(r.o.Dir, "cluster")
	creds := filepath.Join(dir, "credentials")
	nodes, err := r.startCluster(ctx, dir, creds)
	if err != nil {
		return err
	}
	s := &setup{name: "3 nodes", nodes: nodes, creds: creds}
	defer s.close()
	if err := s.connect(ctx, r.o.Seed+1); err != nil {
		s.keepLogs(dir)
		return err
	}
	if err := r.members(ctx, s, 3); err != nil {
		s.keepLogs(dir)
		return err
	}
	for i := range r.o.ClusterRounds {
		fault := r.o.Faults[i%len(r.o.Faults)]
		victim := nodes[r.rand.IntN(3)]
		if fault == FaultLeader {
			if leader := r.leader(ctx, s); leader != nil {
				victim = leader
			}
		}
		var label string
		inject := func() error {
			switch fault {
			case FaultFreeze:
				if err := victim.Freeze(); err != nil {
					return err
				}
				r.say("froze %s for %s", victim.Name, r.o.Freeze)
				time.Sleep(r.o.Freeze) // the fault is the duration itself
				return victim.Thaw()
			case FaultWipe:
				if err := victim.Kill(); err != nil {
					return err
				}
				if err := os.RemoveAll(victim.DataDir); err != nil {
					return err
				}
				r.say("killed %s and emptied its data dir; restarting", victim.Name)
				return r.restart(ctx, victim)
			default:
				if err := victim.Kill(); err != nil {
					return err
				}
				r.say("killed %s; restarting", victim.Name)
				return r.restart(ctx, victim)
			}
		}
		switch fault {
		case FaultKill:
			label = "kill -9 " + victim.Name + ", restart"
		case FaultLeader:
			label = "kill -9 " + victim.Name + " (" + jetstream.StreamOrders + " leader), restart"
		case FaultFreeze:
			label = fmt.Sprintf("SIGSTOP %s %s, SIGCONT", victim.Name, r.o.Freeze)
		case FaultWipe:
			label = "kill -9 " + victim.Name + ", empty data dir, restart"
		default:
			return fmt.Errorf("chaos: unknown fault %q", fault)
		}
		if err := r.record(ctx, s, dir, rep, label, inject); err != nil {
			return err
		}
		if err := r.members(ctx, s, 3); err != nil {
			s.keepLogs(dir)
			return err
		}
	}
	return nil
}

// members waits until the cluster reports want members.
func (r *runner) members(ctx context.Context, s *setup, want int) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := s.cl.ClusterStatus(ctx)
		if err == nil && len(st.Members) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %d members after 90s, want %d (%v)", len(st.Members), want, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// leader is the node leading the order stream, nil if none is known.
func (r *runner) leader(ctx context.Context, s *setup) *Node {
	st, err := s.cl.ClusterStatus(ctx)
	if err != nil {
		return nil
	}
	for _, sr := range st.Streams {
		if sr.Stream != jetstream.StreamOrders {
			continue
		}
		for _, n := range s.nodes {
			if n.Name == sr.Leader {
				return n
			}
		}
	}
	return nil
}
