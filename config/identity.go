package config

import (
	"errors"
	"fmt"
)

// CheckIdentity checks what depends on the user junction runs as, euid:
// at euid 0 every CGI backend must say who its scripts run as (its user,
// the top-level user junction switches to, or allow_root). It returns the
// warnings to print, each "KEY: problem", and an error naming every
// backend that would run scripts as root unasked.
func (c *Config) CheckIdentity(euid int) (warnings []string, err error) {
	if euid != 0 || (c.User != "" && c.User != "root" && c.User != "0") {
		return nil, nil
	}
	var errs []error
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		if b.Type != BackendCGI {
			continue
		}
		key := "backends." + name
		switch {
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
