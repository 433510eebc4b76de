package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) config.TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oms test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "cert.pem")}
	if err := os.WriteFile(c.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSListeners: with certificates configured, the HTTP listeners
// speak only TLS and the embedded NATS server requires it of its clients.
func TestTLSListeners(t *testing.T) {
	cert := selfSigned(t, t.TempDir())
	cfg := testConfig(t.TempDir())
	cfg.HTTP.TLS = config.TLS{Cert: cert.Cert, Key: cert.Key}
	cfg.Security.NatsTLS = config.TLS{Cert: cert.Cert, Key: cert.Key}
	h := startNode(t, cfg)
	pemBytes, err := os.ReadFile(cert.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	token := h.token("alice", auth.RoleCustomer, time.Hour, "oms")
	req, _ := http.NewRequest(http.MethodGet, "https://"+h.node.HTTPAddr(endpoint.External)+"/v1/orders", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("https: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + h.node.HTTPAddr(endpoint.External) + "/v1/orders"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP answered on a TLS listener")
	}
	if nc, err := connectAs(h.node, credentials.UserAdmin, nats.RootCAs(cert.CA)); err != nil {
		t.Fatalf("NATS over TLS: %v", err)
	} else {
		nc.Close()
	}
}

// TestClusterRoutesOverTLS: three nodes whose routes require mutually
// verified TLS form a cluster, replicate an order and serve it from
// another node; a server with a certificate the cluster's CA did not sign
// gets no route, though it knows the routes' password.
func TestClusterRoutesOverTLS(t *testing.T) {
	cert := selfSigned(t, t.TempDir())
	ports := freePorts(t, 4)
	creds := t.TempDir()
	var cfgs []config.Config
	for i, name := range []string{"n1", "n2", "n3"} {
		cfg := clusterConfig(t, creds, name, ports[i], ports[:3])
		cfg.Security.ClusterTLS = cert
		cfgs = append(cfgs, cfg)
	}
	hs := startCluster(t, cfgs)
	eventually(t, 30*time.Second, "three members", func() (bool, string) {
		m := members(hs[2])
		return slices.Equal(m, []string{"n1", "n2", "n3"}), fmt.Sprint(m)
	})
	hs[0].setStock("TLS-1", 5)
	o, err := hs[0].c.PlaceOrder(hs[0].ctx, placeReq("tls-1", order.Item{SKU: "TLS-1", Quantity: 1, UnitPrice: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := hs[2].c.GetOrder(hs[2].ctx, o.ID); err != nil || got.ID != o.ID {
		t.Fatalf("order read through another node: %+v %v", got, err)
	}

	set, err := credentials.Ensure(creds)
	if err != nil {
		t.Fatal(err)
	}
	password, err := set.RoutePassword()
	if err != nil {
		t.Fatal(err)
	}
	other := selfSigned(t, t.TempDir()) // signs itself: not the cluster's CA
	otherTLS, err := tls.LoadX509KeyPair(other.Cert, other.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(other.CA); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("intruder CA: %v", err)
	}
	intruder, err := jetstream.StartServer(jetstream.ServerOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Name: "intruder",
		ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[3]), ClusterName: cfgs[0].ClusterName,
		Routes: []string{fmt.Sprintf("nats-route://127.0.0.1:%d", ports[0])}, RoutePassword: password,
		ClusterTLS: &tls.Config{Certificates: []tls.Certificate{otherTLS}, RootCAs: pool, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(intruder.Shutdown)
	// An absence needs a window: the server dials its route at once and
	// again every second, so three seconds cover several attempts.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n := intruder.NumRoutes(); n != 0 {
			t.Fatalf("a server with a foreign certificate got %d routes", n)
		}
	}
	if m := members(hs[0]); !slices.Equal(m, []string{"n1", "n2", "n3"}) {
		t.Fatalf("members after the intruder: %v", m)
	}
}
