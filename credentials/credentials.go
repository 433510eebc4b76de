// Package credentials owns the secrets of an oms deployment and what they
// allow. On first start a node writes them into its credentials directory
// (0700; every file 0600): one NATS nkey seed per user (node, admin,
// payments, delivery, storefront), the password the cluster's routes
// authenticate with, the secret development tokens are signed with, and the
// webhook secrets of the simulated providers. Nodes of one cluster share
// the directory's contents. It also holds each NATS user's permissions:
// least privilege, and only the node itself may write the event streams.
//
// It may import jetstream (for the subjects and streams it guards),
// nothing else of oms.
package credentials

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// User is a NATS user of oms.
type User string

// The NATS users.
const (
	UserNode       User = "node"
	UserAdmin      User = "admin"
	UserPayments   User = "payments"
	UserDelivery   User = "delivery"
	UserStorefront User = "storefront"
)

// Users lists every NATS user.
var Users = []User{UserNode, UserAdmin, UserPayments, UserDelivery, UserStorefront}

// File names in the directory.
const (
	routeFile   = "cluster.secret"
	jwtFile     = "jwt.secret"
	webhookFile = "webhooks"
)

// SimulatedProviders are the providers `oms serve --simulate` runs; their
// webhook secrets are generated with the rest.
var SimulatedProviders = []string{"simpay", "simship"}

// Set is a credentials directory.
type Set struct {
	Dir string
	// public is each user's nkey public key.
	public map[User]string
}

// Ensure opens dir, creating every credential that is missing. Several
// nodes may share dir and start at once: each file is written whole under a
// temporary name and linked into place, so the first writer wins and the
// others read what it wrote.
func Ensure(dir string) (*Set, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	s := &Set{Dir: dir, public: map[User]string{}}
	for _, u := range Users {
		seed, err := ensure(s.SeedFile(u), func() ([]byte, error) {
			kp, err := nkeys.CreateUser()
			if err != nil {
				return nil, err
			}
			return kp.Seed()
		})
		if err != nil {
			return nil, err
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, fmt.Errorf("credentials %s: %w", s.SeedFile(u), err)
		}
		if s.public[u], err = kp.PublicKey(); err != nil {
			return nil, err
		}
	}
	random := func() ([]byte, error) { return []byte(randomHex(32) + "\n"), nil }
	for _, name := range []string{routeFile, jwtFile} {
		if _, err := ensure(filepath.Join(dir, name), random); err != nil {
			return nil, err
		}
	}
	_, err := ensure(s.WebhookFile(), func() ([]byte, error) {
		var b strings.Builder
		b.WriteString("# <provider> <secret>: webhooks of a provider are verified against each of its secrets;\n")
		b.WriteString("# add a line to rotate one, remove the old line once the provider signs with the new one.\n")
		for _, p := range SimulatedProviders {
			fmt.Fprintf(&b, "%s %s\n", p, randomHex(32))
		}
		return []byte(b.String()), nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ensure returns path's contents, writing make's first if it is missing.
func ensure(path string, make func() ([]byte, error)) ([]byte, error) {
	if data, err := os.ReadFile(path); err == nil {
		return data, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	data, err := make()
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".new-*")
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return data, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the system's randomness failing is not survivable
	}
	return hex.EncodeToString(b)
}

// SeedFile is the nkey seed file of user u (`nats --nkey <file>`).
func (s *Set) SeedFile(u User) string { return filepath.Join(s.Dir, string(u)+".nk") }

// PublicKey is user u's nkey public key, what the server knows of it.
func (s *Set) PublicKey(u User) string { return s.public[u] }

// WebhookFile is the file of the providers' webhook secrets.
func (s *Set) WebhookFile() string { return filepath.Join(s.Dir, webhookFile) }

// RoutePassword is the secret the cluster's routes authenticate with.
func (s *Set) RoutePassword() (string, error) { return readSecret(filepath.Join(s.Dir, routeFile)) }

// TokenSecret is the secret development tokens are signed with.
func (s *Set) TokenSecret() ([]byte, error) {
	v, err := readSecret(filepath.Join(s.Dir, jwtFile))
	return []byte(v), err
}

// TokenSecretFile is where TokenSecret is kept.
func (s *Set) TokenSecretFile() string { return filepath.Join(s.Dir, jwtFile) }

func readSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Connect is the option a client of user u connects with.
func (s *Set) Connect(u User) (nats.Option, error) { return nats.NkeyOptionFromSeed(s.SeedFile(u)) }
