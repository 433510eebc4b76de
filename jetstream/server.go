package jetstream

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
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
	// Users are the only clients the server lets in, each with its
	// permissions; with none, anyone may connect (tests of this package).
	Users []*server.NkeyUser
	// RoutePassword authenticates the routes between the cluster's servers
	// (as RouteUser), both ways.
	RoutePassword string
	// TLS, when set, is required of client connections; ClusterTLS of
	// routes.
	TLS        *tls.Config
	ClusterTLS *tls.Config
}

// RouteUser is the user the cluster's routes authenticate as.
const RouteUser = "oms-route"

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
		Nkeys:      o.Users,
	}
	if o.TLS != nil {
		opts.TLSConfig, opts.TLS, opts.TLSVerify = o.TLS, true, o.TLS.ClientAuth == tls.RequireAndVerifyClientCert
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
		if o.RoutePassword != "" {
			opts.Cluster.Username, opts.Cluster.Password = RouteUser, o.RoutePassword
		}
		if o.ClusterTLS != nil {
			opts.Cluster.TLSConfig = o.ClusterTLS
		}
		if len(o.Routes) > 0 {
			for _, r := range server.RoutesFromStr(strings.Join(o.Routes, ",")) {
				if o.RoutePassword != "" && r.User == nil {
					r.User = url.UserPassword(RouteUser, o.RoutePassword)
				}
				opts.Routes = append(opts.Routes, r)
			}
		}
	}
	opts.NoLog = !o.Log
	// The server logs a port it cannot bind and waits; say so at once.
	for _, addr := range []string{o.Listen, o.ClusterListen} {
		if err := free(addr); err != nil {
			return nil, err
		}
	}
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

// free checks that addr (host:port, port 0 always free) can be listened on.
func free(addr string) error {
	if addr == "" || strings.HasSuffix(addr, ":0") {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("nats listen %s: %w", addr, err)
	}
	return ln.Close()
}

// Traffic is what one client connection exchanged with a server: the
// messages it sent (publishes, requests, replies, acks, pulls) and the
// messages the server delivered to it.
type Traffic struct {
	Sent, Received int64
}

// ClientTraffic is what the server's open client connections have exchanged
// with it so far, summed by connection name (nats.Name; "" for unnamed).
// It counts the wire, which is what the server works for per message: a
// stored message is one sent and its acknowledgement one received, a
// delivery one received and its ack one sent.
func ClientTraffic(srv *server.Server) (map[string]Traffic, error) {
	out := map[string]Traffic{}
	for offset := 0; ; {
		cz, err := srv.Connz(&server.ConnzOptions{Offset: offset, Limit: 1024})
		if err != nil {
			return nil, fmt.Errorf("connections of %s: %w", srv.Name(), err)
		}
		for _, c := range cz.Conns {
			t := out[c.Name]
			t.Sent += c.InMsgs
			t.Received += c.OutMsgs
			out[c.Name] = t
		}
		offset += len(cz.Conns)
		if len(cz.Conns) == 0 || offset >= cz.Total {
			return out, nil
		}
	}
}
