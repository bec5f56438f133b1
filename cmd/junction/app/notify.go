package app

import (
	"context"
	"time"

	"github.com/junction-gw/junction/cmd/junction/internal/sdnotify"
)

// notify tells systemd about junction's state (Type=notify and
// notify-reload units). Outside systemd ($NOTIFY_SOCKET unset) it does
// nothing.
func (a *App) notify(state string) {
	if err := sdnotify.Notify(state); err != nil {
		a.log.Warn("telling systemd", "err", err)
	}
}

// notifyReloading sends RELOADING=1 with the timestamp systemd matches
// to its reload request.
func (a *App) notifyReloading() {
	if err := sdnotify.Reloading(); err != nil {
		a.log.Warn("telling systemd", "err", err)
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval
// until ctx ends. Without a watchdog it returns at once.
func (a *App) watchdog(ctx context.Context) error {
	every, ok := sdnotify.WatchdogInterval()
	if !ok {
		return nil
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := sdnotify.Watchdog(); err != nil {
				a.log.Warn("watchdog ping", "err", err)
			}
		}
	}
}
