package jetstream

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configures the embedded NATS server.
type ServerOptions struct {
	// Listen is host:port for clients; port 0 picks a free port.
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	Name     string
	// ClusterListen (host:port) and Routes (nats-route://host:port) join
	// this server to a NATS cluster named ClusterName.
	ClusterListen string
	Routes        []string
	ClusterName   string
	// Log shows the server's own log on stderr.
	Log bool
}

// StartServer runs an embedded nats-server with JetStream and waits until it
// accepts connections.
func StartServer(o ServerOptions) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: o.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Clean(o.StoreDir),
		NoSigs:     true,
		NoLog:      true,
		// Order events can be batched by one actor; leave headroom.
		MaxPayload: 4 << 20,
	}
	if o.ClusterListen != "" {
		chost, cportStr, err := net.SplitHostPort(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen address %q: %w", o.ClusterListen, err)
		}
		cport, err := strconv.Atoi(cportStr)
		if err != nil {
			return nil, fmt.Errorf("cluster listen port %q: %w", cportStr, err)
		}
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: chost, Port: cport}
		if len(o.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
		}
	}
	opts.NoLog = !o.Log
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if !opts.NoLog {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(60 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on %s did not become ready within 60s", o.Listen)
	}
	return s, nil
}
