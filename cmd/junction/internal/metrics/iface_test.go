package metrics

import (
	"github.com/junction-gw/junction/backends/cgi"
	"github.com/junction-gw/junction/protocols/ajp13"
	"github.com/junction-gw/junction/protocols/fastcgi"
	"github.com/junction-gw/junction/protocols/scgi"
)

// The observers fit the hooks they are made for.
var (
	_ scgi.Observer    = (*CodecObserver)(nil)
	_ fastcgi.Observer = (*CodecObserver)(nil)
	_ ajp13.Observer   = (*CodecObserver)(nil)
	_ cgi.Observer     = (*CGIObserver)(nil)
)
