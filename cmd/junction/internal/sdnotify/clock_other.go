//go:build !linux

package sdnotify

import "errors"

// monotonicUsec: systemd runs only on Linux.
func monotonicUsec() (int64, error) {
	return 0, errors.New("sdnotify: no CLOCK_MONOTONIC outside Linux")
}
