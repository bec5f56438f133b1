package app

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-gw/junction/config"
)

func TestListenUnix(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // what is at path beforehand
		wantErr string                          // "" means it must succeed
	}{
		{"fresh, parent created", func(t *testing.T, path string) {}, ""},
		{"stale socket replaced", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			// Leave the file behind as a killed process would.
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"live socket kept", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "in use"},
		{"regular file kept", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, []byte("data"), 0o644)
		}, "not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run", "j.sock")
			tt.prepare(t, path)
			ln, err := listen(config.Listener{Address: "unix:" + path, SocketMode: 0o600})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("listen = %v, want an error containing %q", err, tt.wantErr)
				}
				if _, err := os.Lstat(path); err != nil {
					t.Errorf("existing file was removed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("socket mode = %v, want 0600", got)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
		})
	}
}

func TestLookupID(t *testing.T) {
	tests := []struct {
		name    string
		want    int
		wantErr bool
	}{
		{"0", 0, false},
		{"1234", 1234, false},
		{"root", 0, false},
		{"no-such-user-junction", 0, true},
	}
	for _, tt := range tests {
		got, err := lookupID(tt.name, userID)
		if (err != nil) != tt.wantErr || !tt.wantErr && got != tt.want {
			t.Errorf("lookupID(%q) = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
