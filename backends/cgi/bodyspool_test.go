package cgi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/junction-gw/junction/backends"
)

func init() {
	if os.Getenv(childEnv) == "1" && os.Getenv("HTTP_X_MODE") == "stdin-stat" {
		os.Exit(stdinStat())
	}
}

// stdinStat reports what the script's stdin is: a regular file, its size
// and its link count (0: unlinked), and CONTENT_LENGTH.
func stdinStat() int {
	var st syscall.Stat_t
	if err := syscall.Fstat(0, &st); err != nil {
		return 1
	}
	fmt.Printf("Content-Type: text/plain\r\n\r\nregular=%v size=%d nlink=%d CONTENT_LENGTH=%s",
		st.Mode&syscall.S_IFMT == syscall.S_IFREG, st.Size, st.Nlink, os.Getenv("CONTENT_LENGTH"))
	return 0
}

// chunked returns a POST request whose body has no length, as net/http
// and the AJP codec hand over a chunked one.
func chunked(body io.Reader, mode string) *http.Request {
	r := request("POST", "/cgi-bin/env.cgi", body, mode)
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	return r
}

// emptyDir fails the test when dir holds anything: spooled bodies are
// unlinked as soon as they are created.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in the spool directory: %s", e.Name())
	}
}

// TestBodySpool: with MaxBodySpool a body of unknown length reaches the
// script whole, as its stdin with CONTENT_LENGTH set, from a file that
// was never left in the spool directory.
func TestBodySpool(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	const limit = 4 << 20
	b, _ := newBackend(t, func(o *Options) { o.MaxBodySpool = limit; o.SpoolDir = dir })
	big := make([]byte, limit)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	shaOf := func(p []byte) string { return fmt.Sprintf("%x %d", sha256.Sum256(p), len(p)) }
	tests := []struct {
		name, mode string
		body       []byte
		want       string // the end of the response body
	}{
		{"digested", "sha", big[:3<<20+17], shaOf(big[:3<<20+17])},
		{"exactly the bound", "sha", big, shaOf(big)},
		{"answers before reading", "early", big[:1<<20], shaOf(big[:1<<20])},
		{"empty", "sha", nil, shaOf(nil)},
		{"stdin is the unlinked file", "stdin-stat", big[:1000], "regular=true size=1000 nlink=0 CONTENT_LENGTH=1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			// One byte per read at first, then the rest: bodies arrive in
			// pieces.
			body := io.MultiReader(bytes.NewReader(tt.body[:min(len(tt.body), 1)]), bytes.NewReader(tt.body[min(len(tt.body), 1):]))
			if err := b.Serve(rec, chunked(body, tt.mode)); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); !strings.HasSuffix(got, tt.want) {
				t.Errorf("body ends %q, want %q", got[max(0, len(got)-80):], tt.want)
			}
			emptyDir(t, dir)
		})
	}
	t.Run("environment", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if err := b.Serve(rec, chunked(strings.NewReader("hello"), "env")); err != nil {
			t.Fatal(err)
		}
		env := envOf(t, rec.Body.String())
		if env["CONTENT_LENGTH"] != "5" {
			t.Errorf("CONTENT_LENGTH = %q, want 5", env["CONTENT_LENGTH"])
		}
		if te, ok := env["HTTP_TRANSFER_ENCODING"]; ok {
			t.Errorf("HTTP_TRANSFER_ENCODING = %q passed on", te)
		}
	})
}

// countingBody counts the bytes read from it.
type countingBody struct {
	r io.Reader
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestBodySpoolRefusals: a body over the bound is 413 and read no
// further; without MaxBodySpool it is 411 as before; a body that fails or
// a client that goes away while it is spooled are the client's failures.
// No script starts and nothing stays in the spool directory.
func TestBodySpoolRefusals(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	const limit = 1 << 20
	obs := &fakeObserver{}
	b, _ := newBackend(t, func(o *Options) { o.MaxBodySpool = limit; o.SpoolDir = dir; o.Observer = obs })

	t.Run("over the bound", func(t *testing.T) {
		body := &countingBody{r: io.LimitReader(zeros{}, 64<<20)}
		err := b.Serve(httptest.NewRecorder(), chunked(body, "sha"))
		if backends.Status(err) != http.StatusRequestEntityTooLarge {
			t.Fatalf("err = %v, want 413", err)
		}
		if body.n > limit+bufSize {
			t.Errorf("read %d bytes of the body, want no more than the bound and one buffer (%d)", body.n, limit+bufSize)
		}
		emptyDir(t, dir)
	})
	t.Run("one byte over", func(t *testing.T) {
		err := b.Serve(httptest.NewRecorder(), chunked(io.LimitReader(zeros{}, limit+1), "sha"))
		if backends.Status(err) != http.StatusRequestEntityTooLarge {
			t.Fatalf("err = %v, want 413", err)
		}
	})
	t.Run("body fails", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader("some bytes"), errReader{io.ErrUnexpectedEOF})
		err := b.Serve(httptest.NewRecorder(), chunked(body, "sha"))
		if !backends.IsClientError(err) || backends.Status(err) != http.StatusBadRequest {
			t.Fatalf("err = %v, want a client error (400)", err)
		}
		emptyDir(t, dir)
	})
	t.Run("client aborts mid-body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		body := &abortingBody{ctx: ctx, first: make([]byte, 100<<10), read: make(chan struct{})}
		go func() {
			<-body.read // part of the body is in the file
			ents, _ := os.ReadDir(dir)
			body.seen = len(ents)
			cancel()
		}()
		err := b.Serve(httptest.NewRecorder(), chunked(body, "sha").WithContext(ctx))
		if !errors.Is(err, backends.ErrClientGone) || backends.Status(err) != backends.StatusClientClosedRequest {
			t.Fatalf("err = %v, want the client gone (499)", err)
		}
		if body.seen != 0 {
			t.Errorf("%d files in the spool directory while spooling, want 0 (unlinked at once)", body.seen)
		}
		emptyDir(t, dir)
	})
	obs.mu.Lock()
	spawned := len(obs.spawned)
	obs.mu.Unlock()
	if spawned != 0 {
		t.Errorf("%d scripts started for refused bodies, want none", spawned)
	}

	t.Run("not spooled without the bound", func(t *testing.T) {
		b, _ := newBackend(t, nil)
		body := &countingBody{r: strings.NewReader("x")}
		err := b.Serve(httptest.NewRecorder(), chunked(body, "sha"))
		if backends.Status(err) != http.StatusLengthRequired {
			t.Fatalf("err = %v, want 411", err)
		}
		if body.n != 0 {
			t.Errorf("read %d bytes of a body refused with 411", body.n)
		}
	})
}

func TestBodySpoolOptions(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"negative bound", func(o *Options) { o.MaxBodySpool = -1 }, "negative body spool bound"},
		{"missing directory", func(o *Options) { o.MaxBodySpool = 1; o.SpoolDir = file + "x" }, "is not a directory"},
		{"a file", func(o *Options) { o.MaxBodySpool = 1; o.SpoolDir = file }, "is not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Name: "test", Root: testRoot}
			tt.mod(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// abortingBody returns first, then blocks until ctx ends and fails, as
// a codec's body does when its client goes away.
type abortingBody struct {
	ctx   context.Context
	first []byte
	read  chan struct{} // closed once first was returned
	once  sync.Once
	done  bool
	seen  int // files in the spool directory meanwhile
}

func (a *abortingBody) Read(p []byte) (int, error) {
	if !a.done {
		n := copy(p, a.first)
		a.first = a.first[n:]
		if len(a.first) == 0 {
			a.done = true
		}
		return n, nil
	}
	a.once.Do(func() { close(a.read) })
	<-a.ctx.Done()
	return 0, io.ErrUnexpectedEOF
}

// TestBodySpoolWithLimits: a spooled body is the stdin of a script
// started under limits too, both ways (the ptrace handshake and the
// helper).
func TestBodySpoolWithLimits(t *testing.T) {
	checkLeaks(t)
	for _, helper := range []bool{false, true} {
		t.Run(fmt.Sprint("helper=", helper), func(t *testing.T) {
			b, _ := newBackend(t, func(o *Options) {
				o.MaxBodySpool = 1 << 20
				o.SpoolDir = t.TempDir()
				o.Limits = Limits{OpenFiles: 64}
			})
			b.noTrace.Store(helper)
			rec := httptest.NewRecorder()
			if err := b.Serve(rec, chunked(strings.NewReader("spooled under limits"), "stdin-stat")); err != nil {
				t.Fatal(err)
			}
			if want := "regular=true size=20 nlink=0 CONTENT_LENGTH=20"; !strings.HasSuffix(rec.Body.String(), want) {
				t.Errorf("body %q, want it to end %q", rec.Body, want)
			}
		})
	}
}
