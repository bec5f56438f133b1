package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/internal/cgienv"
)

// maxRedirectDiscard bounds the output read and dropped after a local
// redirect head; a script that writes more is killed.
const maxRedirectDiscard = 4 << 20

// localRedirect finishes a script whose head is a local redirect. Nothing
// of its response reaches the client: the router serves Location instead.
// Like Apache's mod_cgi, junction reads and drops the rest of the output
// and lets the script run to its end, since a script may print the
// redirect first and do its work after (a POST handler writing to a
// database); its body keeps flowing to stdin meanwhile. Timeout and the
// client going away still end it, and so does too much output.
func (b *Backend) localRedirect(r *http.Request, ctx context.Context, s script, p *proc, br *bufio.Reader, f *feeder, location string) error {
	n, derr := io.Copy(io.Discard, io.LimitReader(br, maxRedirectDiscard+1))
	end := endExit
	if derr != nil || n > maxRedirectDiscard {
		// A read error means the script exited and something it started
		// holds stdout past grace.
		end = endKill
	}
	ferr := b.finish(p, end, f)
	switch {
	case r.Context().Err() != nil:
		return fmt.Errorf("cgi: %s: %w", s.Name, r.Context().Err())
	case context.Cause(ctx) == errTimeout:
		// Its work was cut short: the redirect target would claim
		// success.
		b.log.Warn("cgi: script timed out after a local redirect", "script", s.Name, "timeout", p.timeout)
		return &backends.Error{Status: http.StatusGatewayTimeout, Err: fmt.Errorf("cgi: %s: %w after %v", s.Name, errTimeout, p.timeout)}
	case errors.Is(ferr, errShortBody):
		return &backends.Error{Status: http.StatusBadRequest, Err: ferr}
	case n > maxRedirectDiscard:
		b.log.Warn("cgi: script killed for writing too much after a local redirect", "script", s.Name, "limit", maxRedirectDiscard)
		return &backends.Error{Status: http.StatusBadGateway,
			Err: fmt.Errorf("cgi: %s: more than %d bytes of output after a local redirect", s.Name, maxRedirectDiscard)}
	}
	return cgienv.LocalRedirect(r, location)
}
