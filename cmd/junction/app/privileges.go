package app

import (
	"fmt"

	"github.com/junction-gw/junction/cmd/junction/internal/privdrop"
	"github.com/junction-gw/junction/config"
)

// dropPrivileges switches to the configured user and group, if any. Run
// calls it once every socket is bound and before any instance is spawned
// or request served; ServeInetd before serving its connection.
func (a *App) dropPrivileges() error {
	c := a.ops.cred
	if c == nil {
		return nil
	}
	if err := c.Drop(); err != nil {
		return fmt.Errorf("app: user: %w", err)
	}
	a.log.Info("running as", "user", c.User, "uid", c.UID, "gid", c.GID, "groups", c.Groups)
	return nil
}

// closeSockets closes every bound socket (Run failed before serving).
func (a *App) closeSockets() {
	for _, f := range a.fronts {
		if f.sock != nil {
			f.sock.Close()
		}
	}
	if a.ops.adminLn != nil {
		a.ops.adminLn.Close()
	}
}

// scriptUser returns the user and group the cgi backend b runs scripts
// as. Once junction has dropped to cred it can start scripts only as cred
// itself: a backend asking for that identity runs scripts as junction
// (no switch needed), any other is refused with the reason.
func scriptUser(b *config.Backend, cred *privdrop.Credential) (userName, groupName string, err error) {
	if cred == nil || (b.User == "" && b.Group == "") {
		return b.User, b.Group, nil
	}
	name := b.User
	if name == "" {
		name = cred.User
	}
	want, err := privdrop.Lookup(name, b.Group)
	if err != nil {
		return "", "", err
	}
	if want.UID == cred.UID && want.GID == cred.GID {
		return "", "", nil
	}
	return "", "", fmt.Errorf("user %q group %q: junction drops to %s after binding and can then start scripts only as that user; "+
		"remove this backend's user and group, or the top-level user", b.User, b.Group, cred)
}
