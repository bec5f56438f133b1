package cgi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/internal/spool"
)

// errUnknownLength is the 411 of a body of unknown length that the
// backend does not spool.
var errUnknownLength = errors.New("cgi: request body of unknown length (scripts need CONTENT_LENGTH; max_body_spool spools such bodies)")

// spoolBody reads a request body of unknown length (chunked) into an
// unlinked temporary file, as nginx does with client_body_buffer_size and
// client_max_body_size, so that the script gets CONTENT_LENGTH and the
// file as its stdin. It returns the request the script sees (r with that
// length) and the file, which the caller closes once the script has been
// started; an empty body needs no file. Each read of the body keeps the
// codec's read timeout, and a client that goes away ends the spooling.
//
// A body beyond b.maxSpool is 413, read no further.
func (b *Backend) spoolBody(r *http.Request, s script) (*http.Request, *spool.File, error) {
	// A Budget of the bound, for this body alone: Append refuses the
	// bytes beyond it, so the file never holds more.
	f := &spool.File{Budget: spool.NewBudget(b.maxSpool), Dir: b.spoolDir, Pattern: "junction-cgi-body-"}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	bp := stdinPool.Get().(*[]byte)
	defer stdinPool.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			if err := f.Append(buf[:n]); err != nil {
				_ = f.Close() // unlinked already; closing removes it
				if errors.Is(err, spool.ErrFull) {
					return nil, nil, &backends.Error{Status: http.StatusRequestEntityTooLarge,
						Err: fmt.Errorf("cgi: %s: request body of unknown length larger than %d bytes (max_body_spool)", s.Name, b.maxSpool)}
				}
				return nil, nil, &backends.Error{Status: http.StatusInternalServerError,
					Err: fmt.Errorf("cgi: %s: spooling request body: %w", s.Name, err)}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = f.Close()
			if r.Context().Err() != nil {
				// The read's own error says why (net/http cancels the
				// context when a read times out, too).
				return nil, nil, backends.ContextError(r.Context(), fmt.Sprintf("cgi: %s: reading request body of unknown length: %v", s.Name, rerr))
			}
			return nil, nil, &backends.ClientError{Err: fmt.Errorf("cgi: %s: reading request body of unknown length: %w", s.Name, rerr)}
		}
	}
	sr := r.WithContext(r.Context()) // a shallow copy: r stays the codec's
	sr.ContentLength = f.Len()
	sr.TransferEncoding = nil
	sr.Body = http.NoBody // the script reads the file, never the request
	return sr, f, nil
}
