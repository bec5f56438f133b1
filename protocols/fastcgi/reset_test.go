package fastcgi

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestPeerResetWhenIdle: a peer that resets the connection (close with
// SO_LINGER 0, or with unread bytes, as Caddy's FastCGI client does when
// it stops reading at the end of STDOUT) after its requests ended has
// just left: the connection ends without an error, as on a plain close.
func TestPeerResetWhenIdle(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- s.ServeConn(context.Background(), c)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(get(1, flagKeepConn, "/x")); err != nil {
		t.Fatal(err)
	}
	tr := readTranscript(c, endedCount(1))
	if r := tr.get(1); !r.ended || r.stdout.Len() == 0 {
		t.Fatalf("request not answered: %+v, %v", r, tr.err)
	}
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close() // RST
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeConn = %v after the peer reset an idle connection, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeConn did not return after the peer reset the connection")
	}
	if bytes.Contains(logs.Bytes(), []byte("connection closed")) {
		t.Errorf("logged as a failed connection:\n%s", logs.String())
	}
}
