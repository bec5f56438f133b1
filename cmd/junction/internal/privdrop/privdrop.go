// Package privdrop lets junction, started as root so it can bind privileged
// ports and sockets, continue as an unprivileged user: the configured user
// and group, with the user's supplementary groups (as initgroups(3) sets
// them).
//
// The switch is setgroups, setgid, then setuid. Since Go 1.16 the syscall
// package applies these to every thread of the process, so no thread keeps
// root. It is one-way: a process that dropped cannot become root again.
// Child processes started afterwards (CGI scripts, spawned app instances)
// inherit the unprivileged identity.
package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// ErrNotRoot is returned by Drop when junction does not run as root and
// is not already the configured user and group.
var ErrNotRoot = errors.New("privdrop: switching user needs junction to start as root")

// Credential is the identity to switch to.
type Credential struct {
	// User and Group are the names as configured (Group may be "").
	User, Group string
	// UID and GID are the numeric ids.
	UID, GID int
	// Groups are the supplementary groups; they include GID.
	Groups []int
}

// Lookup resolves userName (a name or numeric id) and groupName (a name or
// numeric id; "" means the user's primary group). Both empty returns nil:
// nothing to drop to. A group without a user is an error.
func Lookup(userName, groupName string) (*Credential, error) {
	if userName == "" {
		if groupName != "" {
			return nil, fmt.Errorf("privdrop: group %q without a user: set user too", groupName)
		}
		return nil, nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		var uerr error
		if u, uerr = user.LookupId(userName); uerr != nil {
			return nil, fmt.Errorf("privdrop: user %q: %w", userName, err)
		}
	}
	c := &Credential{User: userName, Group: groupName}
	if c.UID, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("privdrop: user %q: uid %q is not numeric", userName, u.Uid)
	}
	gid := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			var gerr error
			if g, gerr = user.LookupGroupId(groupName); gerr != nil {
				return nil, fmt.Errorf("privdrop: group %q: %w", groupName, err)
			}
		}
		gid = g.Gid
	}
	if c.GID, err = strconv.Atoi(gid); err != nil {
		return nil, fmt.Errorf("privdrop: group %q: gid %q is not numeric", groupName, gid)
	}
	ids, err := u.GroupIds()
	if err != nil {
		// No group database entry for the user: its own group only.
		ids = nil
	}
	c.Groups = []int{c.GID}
	for _, s := range ids {
		if n, err := strconv.Atoi(s); err == nil && !slices.Contains(c.Groups, n) {
			c.Groups = append(c.Groups, n)
		}
	}
	return c, nil
}

// String describes c for logs: "www-data (uid 33, gid 33)".
func (c *Credential) String() string {
	return fmt.Sprintf("%s (uid %d, gid %d)", c.User, c.UID, c.GID)
}

// sys is the part of the operating system Drop uses; tests replace it.
type sys struct {
	geteuid, getegid func() int
	getuid, getgid   func() int
	setgroups        func([]int) error
	setgid, setuid   func(int) error
}

var osSys = sys{
	geteuid: os.Geteuid, getegid: os.Getegid, getuid: os.Getuid, getgid: os.Getgid,
	setgroups: syscall.Setgroups, setgid: syscall.Setgid, setuid: syscall.Setuid,
}

// Drop switches every thread of the process to c. A nil c does nothing.
// When junction already runs as c's uid and gid it does nothing either;
// otherwise it needs root and returns ErrNotRoot without it. After a
// successful Drop the real, effective and saved ids are all c's.
func (c *Credential) Drop() error { return c.drop(osSys) }

func (c *Credential) drop(s sys) error {
	if c == nil {
		return nil
	}
	euid, egid := s.geteuid(), s.getegid()
	if euid != 0 {
		if euid == c.UID && egid == c.GID && s.getuid() == c.UID && s.getgid() == c.GID {
			return nil
		}
		return fmt.Errorf("%w: junction runs as uid %d and cannot become %s", ErrNotRoot, euid, c)
	}
	// Groups first: once the uid is not root, they cannot change.
	if err := s.setgroups(c.Groups); err != nil {
		return fmt.Errorf("privdrop: setgroups %v: %w", c.Groups, err)
	}
	if err := s.setgid(c.GID); err != nil {
		return fmt.Errorf("privdrop: setgid %d: %w", c.GID, err)
	}
	if err := s.setuid(c.UID); err != nil {
		return fmt.Errorf("privdrop: setuid %d: %w", c.UID, err)
	}
	if s.getuid() != c.UID || s.geteuid() != c.UID || s.getgid() != c.GID || s.getegid() != c.GID {
		return fmt.Errorf("privdrop: still uid %d/%d gid %d/%d after switching to %s",
			s.getuid(), s.geteuid(), s.getgid(), s.getegid(), c)
	}
	return nil
}
