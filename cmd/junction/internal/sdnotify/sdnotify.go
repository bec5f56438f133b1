// Package sdnotify tells systemd about junction's state with the
// sd_notify protocol: one datagram of newline-separated VAR=value
// assignments sent to the unix socket named by $NOTIFY_SOCKET. It lets a
// unit use Type=notify (READY=1 after the listeners are up) and
// Type=notify-reload (RELOADING=1 with MONOTONIC_USEC, which systemd 253
// and later require, then READY=1 when the new config is in force).
//
// Spec: sd_notify(3) and systemd.service(5). Names starting with '@' are
// Linux abstract sockets. Every function is a no-op returning nil when
// NOTIFY_SOCKET is unset, so junction runs the same outside systemd.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned for NOTIFY_SOCKET values other than a path or
// an abstract socket name (vsock: addresses, for instance).
var ErrUnsupported = errors.New("sdnotify: unsupported NOTIFY_SOCKET address")

// sendTimeout bounds the send: systemd reads its notify socket promptly,
// and a stuck write must not stall a reload or a shutdown.
const sendTimeout = time.Second

// Notify sends state to $NOTIFY_SOCKET. It does nothing when the variable
// is unset or empty.
func Notify(state string) error {
	return NotifyTo(os.Getenv("NOTIFY_SOCKET"), state)
}

// NotifyTo sends state to the socket named socket ("" does nothing).
func NotifyTo(socket, state string) error {
	if socket == "" {
		return nil
	}
	if socket[0] != '/' && socket[0] != '@' {
		return fmt.Errorf("%w: %q", ErrUnsupported, socket)
	}
	// The Go runtime maps a leading '@' to the abstract namespace.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: sending %q: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Ready says junction is serving: its listeners are up (at start) or the
// reloaded configuration is in force (after Reloading).
func Ready() error { return Notify("READY=1") }

// Reloading says junction started reloading its configuration. It sends
// MONOTONIC_USEC, the CLOCK_MONOTONIC time in microseconds, which systemd
// uses to match the reload to this request. Send Ready when done.
func Reloading() error {
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sdnotify: reading the monotonic clock: %w", err)
	}
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Stopping says junction is shutting down.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the free-form status line systemctl status shows. Newlines
// in msg become spaces: a newline would start a new assignment.
func Status(msg string) error {
	return Notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(msg))
}

// Watchdog pings the service manager's watchdog (WatchdogSec=).
func Watchdog() error { return Notify("WATCHDOG=1") }

// WatchdogInterval returns how often the watchdog expects a ping
// ($WATCHDOG_USEC) when it is enabled for this process ($WATCHDOG_PID
// unset or equal to our pid). Pinging at half the interval is customary.
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}
