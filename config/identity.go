package config

import (
	"errors"
	"fmt"
)

// CheckIdentity checks what depends on the user junction runs as, euid:
// at euid 0 every CGI backend must say who its scripts run as (its user,
// the top-level user junction switches to, or allow_root). It returns the
// warnings to print, each "KEY: problem", and an error naming every
// backend that would run scripts as root unasked, and every backend with
// run_as owner or user_dir where junction cannot switch to each script's
// owner (not euid 0, or a top-level user to drop to).
func (c *Config) CheckIdentity(euid int) (warnings []string, err error) {
	errs := c.checkRunnerIdentity(euid) // cgirunner.go: run_as owner and user_dir need root
	if euid != 0 || (c.User != "" && c.User != "root" && c.User != "0") {
		return nil, errors.Join(errs...)
	}
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		if b.Type != BackendCGI {
			continue
		}
		key := "backends." + name
		switch {
		case b.RunAs != "" || b.UserDir != "" && b.Root == "":
			// Every script runs as its file's owner, never root.
		case b.User != "" && b.User != "root" && b.User != "0":
		case b.AllowRoot:
			warnings = append(warnings, key+".allow_root: scripts run as root")
		case b.User != "":
			errs = append(errs, fmt.Errorf("%s.user: %q runs scripts as root; set allow_root: true to accept it", key, b.User))
		default:
			errs = append(errs, fmt.Errorf("%s: junction runs as root, so its scripts would too: set user (or the top-level user), or allow_root: true to accept it", key))
		}
	}
	return warnings, errors.Join(errs...)
}
