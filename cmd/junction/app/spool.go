package app

import (
	"log/slog"
	"net/http"

	"github.com/junction-gw/junction/config"
	"github.com/junction-gw/junction/internal/spool"
)

// spooling applies lc's response_buffering to h and returns the
// listener's spool budget (max_spool_bytes), which the held responses and
// a fastcgi server's spooled request bodies share. It goes inside the
// access log and metrics, so a response refused for the budget is logged
// and counted as the 503 it becomes.
func spooling(lc config.Listener, h http.Handler, log *slog.Logger) (http.Handler, *spool.Budget) {
	budget := spool.NewBudget(int64(lc.MaxSpoolBytes))
	if !lc.HoldsResponses() {
		return h, budget
	}
	return &spool.Handler{Next: h, Budget: budget,
		Logger: log.With("protocol", lc.Protocol, "listener", lc.Address)}, budget
}
