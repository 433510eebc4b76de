package credentials_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/oms-project/oms/credentials"
)

// TestEnsureIsSharedSafely: nodes starting at once on one directory end up
// with the same credentials, every file readable by its owner only; a
// second Ensure keeps them.
func TestEnsureIsSharedSafely(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	sets := make([]*credentials.Set, 8)
	var wg sync.WaitGroup
	for i := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := credentials.Ensure(dir)
			if err != nil {
				t.Error(err)
			}
			sets[i] = s
		}()
	}
	wg.Wait()
	for _, u := range credentials.Users {
		for _, s := range sets[1:] {
			if s.PublicKey(u) != sets[0].PublicKey(u) || s.PublicKey(u) == "" {
				t.Fatalf("%s: keys differ between concurrent starts", u)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", e.Name(), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode().Perm())
	}
	again, err := credentials.Ensure(dir)
	if err != nil || again.PublicKey(credentials.UserAdmin) != sets[0].PublicKey(credentials.UserAdmin) {
		t.Fatalf("reopened: %v", err)
	}
	a, _ := sets[0].RoutePassword()
	b, _ := again.RoutePassword()
	if a == "" || a != b {
		t.Fatal("the route password changed")
	}
}
