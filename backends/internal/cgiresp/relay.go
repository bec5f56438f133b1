package cgiresp

import (
	"bufio"
	"errors"
	"io"
	"net/http"
)

// hopByHop are response fields a script may not set: the codec frames the
// response itself.
var hopByHop = [...]string{"Connection", "Keep-Alive", "Transfer-Encoding"}

// WriteHead copies the response's header fields to w, without the
// hop-by-hop ones, and writes its status. A status of 0 (an NPH script's
// local-looking Location, which goes to the client) is written as 302.
func (r *Response) WriteHead(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.Header {
		h[k] = v
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	status := r.Status
	if status == 0 {
		status = http.StatusFound
	}
	w.WriteHeader(status)
}

// ErrOverrun means the script wrote more body than its Content-Length
// declared: the declared bytes were relayed, the rest was not.
var ErrOverrun = errors.New("cgiresp: body longer than its Content-Length")

// CopyBody relays the rest of a response body from br to w as it arrives:
// each read returns what is available (up to br's size) and is written in
// one Write. After a chunk, w is flushed unless more reports that more
// output (or its end) is already waiting, so a burst costs the front
// server one write, and a streaming script streams. A nil more flushes
// after every chunk.
//
// When the head declared a Content-Length, no byte beyond it reaches w:
// more output is ErrOverrun (as rerr), returned as soon as it is seen.
//
// werr is a failed write to the client; rerr a failed read of the output.
// The end of the output is neither.
func (r *Response) CopyBody(w http.ResponseWriter, br *bufio.Reader, more func() bool) (werr, rerr error) {
	werr, rerr = r.CopyDeclared(w, br, more)
	if werr != nil || rerr != nil || r.ContentLength < 0 {
		return werr, rerr
	}
	if more == nil || !more() {
		if err := flush(w); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err, nil
		}
	}
	return nil, r.End(br)
}

// CopyDeclared is CopyBody without the wait for the end of the output:
// once the declared Content-Length has been written it returns, without a
// flush after the last bytes (the codec sends them when the response
// ends). Whatever the script writes after them is left in br, for End.
// Without a declared length it relays everything, as CopyBody does.
func (r *Response) CopyDeclared(w http.ResponseWriter, br *bufio.Reader, more func() bool) (werr, rerr error) {
	left := r.ContentLength // -1: no limit
	for left != 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return nil, nil
				}
				return nil, err
			}
		}
		n := br.Buffered()
		if left > 0 && int64(n) > left {
			n = int(left)
		}
		chunk, _ := br.Peek(n) // cannot fail: the bytes are buffered
		if _, err := w.Write(chunk); err != nil {
			return err, nil
		}
		_, _ = br.Discard(n) // cannot fail: the bytes are buffered
		if left > 0 {
			if left -= int64(n); left == 0 {
				break
			}
		}
		if more != nil && more() {
			continue
		}
		if err := flush(w); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err, nil
		}
	}
	return nil, nil
}

// End waits for the end of the output after a body of declared length:
// nil at the end, ErrOverrun when the script writes more, or the failed
// read.
func (r *Response) End(br *bufio.Reader) error {
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	return ErrOverrun
}

// flush is http.ResponseController's Flush without allocating one per
// response: FlushError, else Flush, through Unwrap, else
// http.ErrNotSupported.
func flush(w http.ResponseWriter) error {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }:
			return t.FlushError()
		case http.Flusher:
			t.Flush()
			return nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return http.ErrNotSupported
		}
	}
}
