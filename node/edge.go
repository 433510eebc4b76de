package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
)

// serverTLS is the TLS configuration of a listener with certificate t
// (nil when none is configured). Peers verifies the other side with t.CA
// (routes between servers do).
func serverTLS(t config.TLS, peers bool) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate in it", t.CA)
		}
		cfg.RootCAs = pool
		if peers {
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// pinned is a client configuration that accepts only cert: what a node
// needs to reach its own TLS listener whatever names the certificate has.
func pinned(cert tls.Certificate) *tls.Config {
	own := cert.Certificate[0]
	return &tls.Config{MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact comparison below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own) {
				return errors.New("the server presented another certificate than its own")
			}
			return nil
		}}
}

// inbound publishes a verified webhook's event to its provider subject,
// where OMS_INBOUND takes it as it takes a provider's own publish.
type inbound struct{ js natsjs.JetStream }

// Publish stores a webhook's event with the request's correlation ID (and
// its trace, sampled as the request was).
func (i inbound) Publish(ctx context.Context, subject, msgID string, data []byte) (uint64, bool, error) {
	hdr := api.CorrelationHeaders(endpoint.Correlation(ctx), endpoint.Sampled(ctx))
	ack, err := jetstream.Publish(ctx, i.js, subject, msgID, data, hdr)
	if err != nil {
		return 0, false, err
	}
	return ack.Sequence, ack.Duplicate, nil
}

// events follows an order's subject for the live event streams.
type events struct{ orders natsjs.Stream }

func (e events) Watch(ctx context.Context, id string, after uint64, fn func(uint64, []byte) error) error {
	err := jetstream.Watch(ctx, e.orders, jetstream.OrderEventsPrefix+id, after, func(m natsjs.Msg, seq uint64) error {
		return fn(seq, m.Data())
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
