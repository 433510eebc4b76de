package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/endpoint"
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
