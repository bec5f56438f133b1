package integration

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// appsPseudoRandom returns n bytes that look random (git cannot compress
// them) but are the same on every run for the same seed: SHA-256 in counter
// mode.
func appsPseudoRandom(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var block [8 + 64]byte
	copy(block[8:], seed)
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(block[:8], i)
		s := sha256.Sum256(block[:8+min(len(seed), 64)])
		out = append(out, s[:]...)
	}
	return out[:n]
}

// appsExample reads examples/NAME from the repository and applies the
// replacements (old, new pairs): the tests run the examples the README
// shows, with the test's own ports and directories. A replacement whose old
// text is not in the file fails the test, so an example cannot drift away
// from what is tested.
func appsExample(t testing.TB, name string, oldnew ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	s := string(b)
	for i := 0; i+1 < len(oldnew); i += 2 {
		if !strings.Contains(s, oldnew[i]) {
			t.Fatalf("examples/%s no longer contains %q", name, oldnew[i])
		}
	}
	return strings.NewReplacer(oldnew...).Replace(s)
}
