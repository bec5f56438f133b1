//go:build unix && !linux

package sockets

func closeRangeCloexec() bool { return false }
