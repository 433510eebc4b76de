package endpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/order"
)

type echo struct {
	Text string `json:"text"`
}

func (e echo) Validate() error {
	if e.Text == "" {
		return &order.ValidationError{Field: "text", Message: "is required"}
	}
	return nil
}

// syncBuffer is a log sink the handlers' goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestMicroAdapter: a request is decoded, validated and answered; a bad
// body or a bad field is a 400 naming it; an internal error answers a
// generic 500 with a correlation ID that the log line carries next to the
// detail; a full in-flight bound answers 503 at once.
func TestMicroAdapter(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	release, started := make(chan struct{}), make(chan struct{}, 1)
	ops := []endpoint.Operation{
		endpoint.New("echo", "t.echo", func(_ context.Context, e echo) (echo, error) { return e, nil }),
		endpoint.New("broken", "t.broken", func(context.Context, echo) (echo, error) {
			return echo{}, errors.New("bbolt: page 7 corrupt")
		}),
		endpoint.New("slow", "t.slow", func(context.Context, echo) (echo, error) {
			started <- struct{}{}
			<-release
			return echo{}, nil
		}),
	}
	m, err := endpoint.ServeMicro(env.NC, "1.0.0", ops, endpoint.NewLimiter(1, 5*time.Second), log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	ask := func(subject, body string) (int, api.Error, string) {
		t.Helper()
		msg, err := env.NC.Request(subject, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get(micro.ErrorCodeHeader) == "" {
			return 200, api.Error{}, string(msg.Data)
		}
		var e api.Error
		if err := json.Unmarshal(msg.Data, &e); err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get(micro.ErrorHeader) != e.Message {
			t.Fatalf("header %q, body %q", msg.Header.Get(micro.ErrorHeader), e.Message)
		}
		return e.Code, e, ""
	}
	// The one slot is given back just after a reply is sent, so a request
	// sent at once after it may still find it taken: those that expect an
	// answer ask again while the node says busy, within a deadline.
	askFree := func(subject, body string) (int, api.Error, string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, e, out := ask(subject, body)
			if code != 503 || time.Now().After(deadline) {
				return code, e, out
			}
			runtime.Gosched()
		}
	}
	if code, _, body := askFree("t.echo", `{"text":"hi"}`); code != 200 || body != `{"text":"hi"}` {
		t.Fatalf("echo: %d %s", code, body)
	}
	if code, e, _ := askFree("t.echo", `{"text":`); code != 400 || e.Field != "body" || e.Kind != api.KindInvalid {
		t.Fatalf("bad JSON: %d %+v", code, e)
	}
	if code, e, _ := askFree("t.echo", `{}`); code != 400 || e.Field != "text" {
		t.Fatalf("missing field: %d %+v", code, e)
	}
	code, e, _ := askFree("t.broken", `{"text":"x"}`)
	if code != 500 || e.CorrelationID == "" || strings.Contains(e.Message, "bbolt") {
		t.Fatalf("internal: %d %+v", code, e)
	}
	if l := logs.String(); !strings.Contains(l, e.CorrelationID) || !strings.Contains(l, "page 7 corrupt") {
		t.Fatalf("log %q lacks the correlation ID %s or the detail", l, e.CorrelationID)
	}
	// The slow request holds the only slot (sent again while the slot is
	// still taken by the request before it), and the next is refused.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := env.NC.Request("t.slow", []byte(`{"text":"x"}`), 5*time.Second)
			if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "503" {
				return
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request never started")
	}
	if code, e, _ := ask("t.echo", `{"text":"x"}`); code != 503 || e.Kind != api.KindUnavailable {
		t.Fatalf("busy: %d %+v", code, e)
	}
	close(release)
	<-done
}
