package cgi

import (
	"errors"
	"fmt"
	"syscall"
)

// notDir marks ENOTDIR (a path component is a file) as "not found".
func notDir(err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", errNotDir, err)
	}
	return err
}
