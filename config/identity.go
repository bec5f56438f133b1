package config

import (
	"errors"
	"fmt"
	"os/user"
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
	if euid != 0 || (c.User != "" && !isRoot(c.User)) {
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
		case b.User != "" && !isRoot(b.User):
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

// isRoot reports whether the user name names uid 0, looked up as junction
// looks it up when it switches to it (a name, else a numeric id): "root",
// and also "0", "00", "+0" or an alias such as "toor".
func isRoot(name string) bool {
	if name == "root" || name == "0" {
		return true
	}
	u, err := user.Lookup(name)
	if err != nil {
		u, err = user.LookupId(name)
	}
	return err == nil && u.Uid == "0"
}
