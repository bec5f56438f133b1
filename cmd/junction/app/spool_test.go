package app

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/internal/spool"
	"github.com/junction-gw/junction/protocols/fastcgi"
)

func TestSpooling(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	next := http.NotFoundHandler()
	tests := []struct {
		protocol, buffering string
		holds               bool
	}{
		{config.ProtocolSCGI, "auto", true},
		{config.ProtocolFastCGI, "auto", true},
		{config.ProtocolHTTP, "auto", true},
		{config.ProtocolAJP, "auto", false},
		{config.ProtocolAJP, "on", true},
		{config.ProtocolSCGI, "off", false},
	}
	for _, tt := range tests {
		t.Run(tt.protocol+"/"+tt.buffering, func(t *testing.T) {
			lc := config.Listener{Protocol: tt.protocol, Address: "127.0.0.1:0", ResponseBuffering: tt.buffering, MaxSpoolBytes: 12345}
			h, budget := spooling(lc, next, log)
			if budget.Limit() != 12345 {
				t.Errorf("budget limit %d, want max_spool_bytes 12345", budget.Limit())
			}
			sh, held := h.(*spool.Handler)
			if held != tt.holds {
				t.Fatalf("handler %T: holds %v, want %v", h, held, tt.holds)
			}
			if held && (sh.Budget != budget || sh.Next == nil) {
				t.Errorf("spool.Handler %+v does not use the listener's budget", sh)
			}
			srv, err := newServer(lc, h, &connCounter{}, budget, log)
			if err != nil {
				t.Fatal(err)
			}
			if fs, ok := srv.(*fastcgi.Server); ok && fs.SpoolBudget != budget {
				t.Error("the fastcgi server does not spool request bodies against the listener's budget")
			}
		})
	}
}
