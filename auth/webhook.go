package auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oms-project/oms/api"
)

// SignatureHeader carries a webhook's signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">, with one v1 per secret the sender signs
// with (several while a secret is rotated).
const SignatureHeader = "Oms-Signature"

// DefaultTolerance is how far a webhook's timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// SignWebhook returns the signature header of body signed at t with each
// secret.
func SignWebhook(t time.Time, body []byte, secrets ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, s := range secrets {
		parts = append(parts, "v1="+hex.EncodeToString(mac(s, ts, body)))
	}
	return strings.Join(parts, ",")
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifyWebhook checks that header signs body with one of secrets, at a
// time within tolerance of now. Signatures are compared in constant time.
// Every failure is an api.ErrUnauthenticated saying what was wrong.
func VerifyWebhook(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	fail := func(why string) error { return fmt.Errorf("webhook signature: %s: %w", why, api.ErrUnauthenticated) }
	if header == "" {
		return fail("missing " + SignatureHeader + " header")
	}
	if len(secrets) == 0 {
		return fail("no secret for this provider")
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fail("no timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fail(fmt.Sprintf("timestamp %s outside the tolerance of %s", time.Unix(sec, 0).UTC().Format(time.RFC3339), tolerance))
	}
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return fail("no signature matches")
}

// WebhookSecrets reads the providers' secrets from a file of lines
// "<provider> <secret>" (a provider may have several lines while its secret
// is rotated; # starts a comment). The file is read again when it changes,
// so a rotation needs no restart.
type WebhookSecrets struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	secrets map[string][][]byte
}

// NewWebhookSecrets reads path.
func NewWebhookSecrets(path string) (*WebhookSecrets, error) {
	w := &WebhookSecrets{path: path}
	if _, err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

// For returns the active secrets of provider.
func (w *WebhookSecrets) For(provider string) [][]byte {
	m, err := w.load()
	if err != nil {
		return nil
	}
	return m[provider]
}

func (w *WebhookSecrets) load() (map[string][][]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fi, err := os.Stat(w.path)
	if err != nil {
		return w.secrets, fmt.Errorf("webhook secrets: %w", err)
	}
	if w.secrets != nil && fi.ModTime().Equal(w.modTime) && fi.Size() == w.size {
		return w.secrets, nil
	}
	f, err := os.Open(w.path)
	if err != nil {
		return w.secrets, fmt.Errorf("webhook secrets: %w", err)
	}
	defer f.Close()
	m, err := parseWebhookSecrets(f, w.path)
	if err != nil {
		return w.secrets, err
	}
	w.secrets, w.modTime, w.size = m, fi.ModTime(), fi.Size()
	return m, nil
}

// parseWebhookSecrets reads the lines of a secrets file named name.
func parseWebhookSecrets(r io.Reader, name string) (map[string][][]byte, error) {
	m := map[string][][]byte{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || len(fields[1]) < 16 {
			return nil, fmt.Errorf("webhook secrets %s:%d: want \"<provider> <secret of 16 or more characters>\"", name, n)
		}
		m[fields[0]] = append(m[fields[0]], []byte(fields[1]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("webhook secrets %s: %w", name, err)
	}
	return m, nil
}
