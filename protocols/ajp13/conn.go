package ajp13

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-gw/junction/protocols/internal/connserver"
)

// errShutdownRefused is returned when the web server sends SHUTDOWN: a
// front server must never be able to stop junction.
var errShutdownRefused = errors.New("ajp13: SHUTDOWN packet refused")

// conn is one pooled connection from the web server. Requests on it are
// strictly sequential.
type conn struct {
	srv          *Server
	nc           *connserver.Conn
	in           []byte        // incoming packet buffer, PacketSize long, reused
	out          []byte        // outgoing packet buffer, PacketSize long, reused
	writeTimeout time.Duration // per write; 0: none

	wmu sync.Mutex // guards bw, out and enc: the handler and the body reader both write
	bw  *bufio.Writer
	enc encoder
	// body buffers the response body of the request in progress (one
	// SEND_BODY_CHUNK's worth), reused by each request in turn.
	body *bufio.Writer

	// peeked holds a byte the background reader took off the wire.
	peeked    byte
	hasPeeked bool

	bgMu       sync.Mutex
	inHandler  bool
	bgDone     chan struct{}
	bgStopping atomic.Bool
	bgByte     [1]byte
	bgErr      error
	bgTimer    *time.Timer // starts the background read once a request runs bgReadDelay
	bgArmed    bool        // this request's body is read: the timer may start the read
	cancelReq  context.CancelFunc

	failMu sync.Mutex
	failed error // first error that left the connection unusable
}

func newConn(s *Server, nc *connserver.Conn) *conn {
	c := &conn{
		srv:          s,
		nc:           nc,
		in:           make([]byte, s.packetSize()),
		out:          make([]byte, 0, s.packetSize()),
		writeTimeout: connserver.WriteTimeout(s.WriteTimeout),
	}
	c.bw = bufio.NewWriterSize(nc, s.packetSize())
	return c
}

func (c *conn) remote() string {
	if a := c.nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return "local"
}

// maxChunk is the largest request body chunk: the packet minus its 4-byte
// header and the 2-byte chunk length (mod_proxy_ajp reads up to that much,
// whatever size GET_BODY_CHUNK asked for).
func (c *conn) maxChunk() int { return len(c.in) - headerLen - 2 }

// maxData is the largest response body chunk: the packet minus its header,
// the type byte, the chunk length and the trailing NUL.
func (c *conn) maxData() int { return len(c.in) - headerLen - 1 - 2 - 1 }

// fail records the first error that leaves the connection unusable.
func (c *conn) fail(err error) {
	c.failMu.Lock()
	if c.failed == nil {
		c.failed = err
	}
	c.failMu.Unlock()
}

func (c *conn) failure() error {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	return c.failed
}

// Read serves packet reads: first the byte the background reader took,
// then the connection.
func (c *conn) Read(p []byte) (int, error) {
	if c.hasPeeked && len(p) > 0 {
		p[0] = c.peeked
		c.hasPeeked = false
		return 1, nil
	}
	return c.nc.Read(p)
}

func (c *conn) setReadTimeout(d time.Duration) {
	c.nc.SetReadDeadline(time.Now().Add(d)) //nolint:errcheck // a failed deadline shows up as a read error
}

// errReadDeadline is what a body read gets once the handler's read
// deadline has passed.
var errReadDeadline = fmt.Errorf("ajp13: reading request body: %w", os.ErrDeadlineExceeded)

// readBodyPacket reads one body packet within ReadTimeout, or the
// handler's read deadline (errHandlerDeadline when that ended it).
func (c *conn) readBodyPacket() ([]byte, error) {
	reads := c.nc.Reads()
	reads.Arm(c.srv.readTimeout()) //nolint:errcheck // a failed deadline shows up as a read error
	p, err := readPacket(c, c.in)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && reads.Passed():
			return nil, fmt.Errorf("%w: %w", errHandlerDeadline, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("ajp13: request body stalled for %s: %w", c.srv.readTimeout(), err)
		}
		return nil, fmt.Errorf("ajp13: reading request body: %w", err)
	}
	return p, nil
}

// errHandlerDeadline marks a body read ended by the handler's own read
// deadline: the body fails, the connection is not reused, but the
// response still goes out.
var errHandlerDeadline = errors.New("ajp13: request body read ended by the handler's deadline")

// serve runs the request loop of one connection.
func (c *conn) serve(ctx context.Context) error {
	for {
		if !c.nc.SetIdle(true) {
			return nil
		}
		// The first byte under the idle timeout; the rest of the packet,
		// header included, under the read timeout from that byte.
		c.setReadTimeout(c.srv.idleTimeout())
		if _, err := io.ReadFull(c, c.in[:1]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the web server closed its pooled connection
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // idle too long: close quietly, the pool reconnects
			}
			if c.nc.ShuttingDown() {
				return nil
			}
			return fmt.Errorf("ajp13: waiting for a request: %w", err)
		}
		c.nc.BeginHead(c.srv.readTimeout()) //nolint:errcheck // a failed deadline shows up as a read error
		if _, err := io.ReadFull(c, c.in[1:headerLen]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("ajp13: reading a packet header: %w", err)
		}
		payload, err := readPayload(c, c.in)
		if err != nil {
			return err
		}
		if len(payload) == 0 {
			return fmt.Errorf("ajp13: %w: empty packet between requests: %w", errUnexpectedPacket, ErrMalformed)
		}
		switch t := inType(payload[0]); t {
		case typeCPing, typePing:
			c.srv.server().Event(eventCPing)
			if err := c.writeSmall(typeCPong); err != nil {
				return err
			}
		case typeShutdown:
			c.srv.server().Event(eventShutdownRefused)
			return errShutdownRefused
		case typeForwardRequest:
			if keep, err := c.serveRequest(ctx, payload); err != nil || !keep {
				return err
			}
			if c.nc.ShuttingDown() {
				return nil
			}
		default:
			return fmt.Errorf("ajp13: %w %d between requests: %w", errUnexpectedPacket, t, ErrMalformed)
		}
	}
}

// serveRequest serves one FORWARD_REQUEST and reports whether the
// connection may carry another request.
func (c *conn) serveRequest(ctx context.Context, payload []byte) (keep bool, err error) {
	s := c.srv
	f, err := decodeForwardRequest(payload, decodeLimits{maxHeaderBytes: s.maxHeaderBytes(), maxHeaders: maxHeaders})
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return false, c.refuse(http.StatusRequestHeaderFieldsTooLarge, err)
		}
		return false, err
	}
	if s.Secret != "" {
		a, ok := f.attr(attrSecret)
		if !ok || subtle.ConstantTimeCompare([]byte(a.value), []byte(s.Secret)) != 1 {
			why := "wrong secret"
			if !ok {
				why = "no secret"
			}
			c.srv.server().Event(eventSecretRefused)
			return false, c.refuse(http.StatusForbidden, fmt.Errorf("%w: %s", errSecretRefused, why))
		}
	}
	c.logDroppedAttributes(f)
	// Deadlines the handler set are its request's.
	defer c.nc.Reads().Release()
	defer c.nc.Writes().Release()
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := f.httpRequest(reqCtx, s.Route)
	if err != nil {
		return false, c.refuse(http.StatusBadRequest, err)
	}

	c.bgMu.Lock()
	c.inHandler, c.cancelReq = true, cancel
	c.bgMu.Unlock()
	var b *body
	if r.ContentLength != 0 {
		b = newBody(c, r.ContentLength, c.armBackgroundRead)
		r.Body = b
	} else {
		c.armBackgroundRead()
	}
	w := newResponse(c, r, cancel)
	s.Handler.ServeHTTP(w, r)
	peerGone := c.stopBackgroundRead()

	if peerGone != nil {
		return false, peerGone
	}
	w.finish()
	// A response that broke its Content-Length broke the exchange's
	// framing: the connection is not reused (cgihead.Length).
	reuse := c.failure() == nil && !w.length.Over()
	if b != nil {
		switch {
		case !reuse:
			b.finish()
		case !b.drain():
			reuse = false
			if c.failure() == nil {
				s.logger().Info("ajp13: closing connection: request body not consumed", "remote", c.remote(), "uri", r.RequestURI)
			}
		}
	}
	if err := c.failure(); err != nil {
		return false, err
	}
	if c.nc.ShuttingDown() {
		reuse = false
	}
	if err := c.writeEndResponse(reuse); err != nil {
		return false, err
	}
	return reuse, nil
}

// refuse answers a request junction will not serve with status and an
// END_RESPONSE that closes the connection, and returns why for the log.
func (c *conn) refuse(status int, why error) error {
	c.srv.logger().Warn("ajp13: request refused", "remote", c.remote(), "status", status, "reason", why.Error())
	w := newResponse(c, nil, func() {})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s\n", status, http.StatusText(status))
	w.finish()
	if err := c.failure(); err != nil {
		return errors.Join(why, err)
	}
	if err := c.writeEndResponse(false); err != nil {
		return errors.Join(why, err)
	}
	return why
}

func (c *conn) logDroppedAttributes(f *forwardRequest) {
	for _, a := range f.attrs {
		if a.code != attrReqAttribute {
			continue
		}
		if _, ok := reqAttributeVars[a.name]; ok {
			continue
		}
		if strings.HasPrefix(a.name, "javax.servlet.") || strings.HasPrefix(a.name, "jakarta.servlet.") {
			c.srv.logger().Warn("ajp13: ignoring servlet request attribute (Ghostcat-style request)",
				"remote", c.remote(), "attribute", a.name)
		} else {
			c.srv.logger().Debug("ajp13: ignoring request attribute", "remote", c.remote(), "attribute", a.name)
		}
	}
}

// bgReadDelay is how long a request runs before its connection is
// watched for the web server going away. Most responses are done sooner:
// they then cost no goroutine, no read and no deadline changes; a client
// that leaves a long request is noticed this much later (SCGI's
// watchDelay is the same).
const bgReadDelay = 10 * time.Millisecond

// armBackgroundRead starts the background read once the request has run
// for bgReadDelay (stopBackgroundRead disarms it).
func (c *conn) armBackgroundRead() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if !c.inHandler {
		return
	}
	c.bgArmed = true
	if c.bgTimer == nil {
		c.bgTimer = time.AfterFunc(bgReadDelay, c.startBackgroundRead)
		return
	}
	c.bgTimer.Reset(bgReadDelay)
}

// startBackgroundRead watches the idle connection while the handler runs
// (the request body, if any, is fully read): the web server sends nothing
// until the response ends, so a read returning means it closed the
// connection (the client went away) and the request context is cancelled.
// The read has no deadline of its own; stopBackgroundRead ends it.
func (c *conn) startBackgroundRead() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	// A timer armed by an earlier request may fire late: only a request
	// whose body is read (armed) may have its connection read here.
	if !c.bgArmed || !c.inHandler || c.bgDone != nil {
		return
	}
	done := make(chan struct{})
	c.bgDone = done
	c.bgErr = nil
	c.nc.SetReadDeadline(time.Time{}) //nolint:errcheck // see setReadTimeout
	cancel := c.cancelReq
	go func() {
		defer close(done)
		for {
			n, err := c.nc.Read(c.bgByte[:])
			if n == 1 {
				c.peeked, c.hasPeeked = c.bgByte[0], true
			}
			if err == nil || c.bgStopping.Load() {
				return
			}
			// A timeout without stopBackgroundRead is the handler's read
			// deadline, not the web server going away: watch on.
			if errors.Is(err, os.ErrDeadlineExceeded) && c.nc.SetReadDeadline(time.Time{}) == nil {
				continue
			}
			c.bgErr = err
			cancel()
			return
		}
	}()
}

// stopBackgroundRead ends the background read and returns a non-nil error
// when it saw the connection end.
func (c *conn) stopBackgroundRead() error {
	c.bgMu.Lock()
	c.inHandler, c.bgArmed = false, false
	if c.bgTimer != nil {
		c.bgTimer.Stop() // a start that fired meanwhile finds inHandler false
	}
	done := c.bgDone
	c.bgDone = nil
	c.bgMu.Unlock()
	if done == nil {
		return nil
	}
	c.bgStopping.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // see setReadTimeout
	<-done
	c.bgStopping.Store(false)
	if err := c.bgErr; err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("ajp13: web server closed the connection during the response: %w", io.EOF)
		}
		return fmt.Errorf("ajp13: connection failed during the response: %w", err)
	}
	return nil
}
