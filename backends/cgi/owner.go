package cgi

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/junction-gw/junction/backends"
)

// runner holds what decides how a resolved script is started beyond its
// path: the interpreters by extension, run_as owner and user_dir.
type runner struct {
	interp     interpreters
	singleArgv []string // single-script mode with an interpreter
	access     access   // who scripts run as when not as their owner
	runAsOwner bool
	minUID     uint32
	minGID     uint32
	userDir    string
	// lookupUser finds a user_dir user's passwd entry (user.Lookup;
	// tests replace it).
	lookupUser func(name string) (*user.User, error)
}

// defaultMinID is the default lowest uid and gid run_as owner and user_dir
// accept: the first regular account on Debian and most distributions
// (UID_MIN in login.defs); suEXEC's AP_UID_MIN is often set there too.
const defaultMinID = 1000

// initRunner checks the interpreters, run_as and user_dir options.
func (b *Backend) initRunner(o Options) []error {
	var errs []error
	wrap := func(err error) { errs = append(errs, fmt.Errorf("cgi: %s: %w", o.Name, err)) }
	var ierrs []error
	b.interp, ierrs = newInterpreters(o.Interpreters)
	for _, err := range ierrs {
		wrap(err)
	}
	b.runAsOwner, b.userDir = o.RunAsOwner, o.UserDir
	b.minUID, b.minGID = o.MinUID, o.MinGID
	if b.minUID == 0 {
		b.minUID = defaultMinID
	}
	if b.minGID == 0 {
		b.minGID = defaultMinID
	}
	b.lookupUser = user.Lookup
	if !o.RunAsOwner && o.UserDir == "" {
		return errs
	}
	what := "run_as owner"
	if !o.RunAsOwner {
		what = "user_dir"
	}
	if o.RunAsOwner && (o.User != "" || o.Group != "") {
		wrap(fmt.Errorf("run_as owner excludes user and group"))
	}
	if os.Geteuid() != 0 {
		wrap(fmt.Errorf("%s needs junction to run as root (to switch to each script's owner)", what))
	}
	if o.UserDir != "" {
		if o.Script != "" {
			wrap(fmt.Errorf("user_dir does not go with script"))
		}
		if filepath.IsAbs(o.UserDir) || filepath.Clean(o.UserDir) != o.UserDir || o.UserDir == "." ||
			o.UserDir == ".." || len(o.UserDir) > 2 && o.UserDir[:3] == "../" {
			wrap(fmt.Errorf("user_dir %q must be a clean relative path inside the home directory", o.UserDir))
		}
	}
	return errs
}

// scriptDir is the directory a script's name was found in.
type scriptDir struct {
	// path is the directory as the request named it, symlinks in it
	// followed by stat.
	path string
	// info is path's stat, when the walk has it already; nil otherwise.
	info fs.FileInfo
	// linked says the script's own name was a symlink: its resolved
	// directory may be another one.
	linked bool
}

// prepare completes a resolved script s whose file (symlinks resolved) fi
// describes and whose name in the request is name: its command line (an
// interpreter by extension), the checks that it may run, and its
// credential under run_as owner or user_dir, where owner is the uid the
// file must belong to (a ~user's; -1: any).
func (b *Backend) prepare(s *script, name string, fi fs.FileInfo, dir scriptDir, owner int64) error {
	cmd := b.interp.lookup(name)
	switch {
	case !fi.Mode().IsRegular():
		return backends.Errorf(http.StatusForbidden, "cgi: %s: %s is not a regular file", b.name, s.Filename)
	case b.runAsOwner || owner >= 0:
		cred, err := b.ownerCred(s.Filename, fi, cmd != nil, dir, owner)
		if err != nil {
			return err
		}
		s.cred = cred
	case cmd == nil && fi.Mode()&0o111 == 0:
		return backends.Errorf(http.StatusForbidden, "cgi: %s: %s is not an executable file", b.name, s.Filename)
	case cmd != nil && !b.access.readable(fi):
		return backends.Errorf(http.StatusForbidden, "cgi: %s: %s is not readable by the user scripts run as", b.name, s.Filename)
	}
	if cmd != nil {
		s.argv = commandLine(cmd, s.Filename)
	}
	return nil
}

// ownerCred makes suEXEC's checks of the script file (resolved path file,
// fi its stat) and returns the credential it runs with: its owner and
// group. Each failure is a 403 whose error says why (it is logged, never
// sent to the client):
//
//   - the owner is not root, not below min_uid, and is owner when owner
//     >= 0 (user_dir); the group is not root, not below min_gid;
//   - the file is not writable by its group or others, has no setuid or
//     setgid bit, and its owner may execute it (read it, when an
//     interpreter runs it);
//   - the directory the request named it in (before its own symlink, if
//     it is one, is resolved) belongs to the same owner, so that a link in
//     alice's directory to bob's script is refused; so does the directory
//     the file really is in (its owner could replace the file); neither
//     is writable by group or others.
//
// That the file is inside the root, symlinks resolved, the walk checked.
// What it costs: a stat of the directory when the walk did not pass
// through it (a script directly in the root), and one of the resolved
// directory when the name was a symlink.
func (b *Backend) ownerCred(file string, fi fs.FileInfo, interpreted bool, dir scriptDir, owner int64) (*syscall.Credential, error) {
	refuse := func(format string, args ...any) error {
		return backends.Errorf(http.StatusForbidden, "cgi: %s: run_as owner: %s: %s", b.name, file, fmt.Sprintf(format, args...))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, refuse("no owner information")
	}
	uid, gid, mode := st.Uid, st.Gid, fi.Mode()
	switch {
	case owner >= 0 && int64(uid) != owner:
		return nil, refuse("owned by uid %d, not by the user whose directory it is (uid %d)", uid, owner)
	case uid == 0:
		return nil, refuse("owned by root")
	case uid < b.minUID:
		return nil, refuse("owner uid %d is below min_uid %d", uid, b.minUID)
	case gid == 0:
		return nil, refuse("its group is root")
	case gid < b.minGID:
		return nil, refuse("group gid %d is below min_gid %d", gid, b.minGID)
	case mode.Perm()&0o022 != 0:
		return nil, refuse("writable by group or others (mode %04o)", mode.Perm())
	case mode&(fs.ModeSetuid|fs.ModeSetgid) != 0:
		return nil, refuse("setuid or setgid")
	case interpreted && mode&0o400 == 0:
		return nil, refuse("not readable by its owner (mode %04o)", mode.Perm())
	case !interpreted && mode&0o100 == 0:
		return nil, refuse("not executable by its owner (mode %04o)", mode.Perm())
	}
	di := dir.info
	if di == nil {
		var err error
		if di, err = os.Stat(dir.path); err != nil {
			return nil, refuse("directory: %v", err)
		}
	}
	dst, ok := di.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return nil, refuse("no owner information for directory %s", dir.path)
	case dst.Uid != uid:
		return nil, refuse("directory %s is owned by uid %d, the script by uid %d", dir.path, dst.Uid, uid)
	case di.Mode().Perm()&0o022 != 0:
		return nil, refuse("directory %s is writable by group or others (mode %04o)", dir.path, di.Mode().Perm())
	}
	if real := filepath.Dir(file); dir.linked && real != dir.path {
		ri, err := os.Stat(real)
		if err != nil {
			return nil, refuse("directory: %v", err)
		}
		rst, ok := ri.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
			return nil, refuse("no owner information for directory %s", real)
		case ri.Mode().Perm()&0o022 != 0:
			return nil, refuse("directory %s is writable by group or others (mode %04o)", real, ri.Mode().Perm())
		case rst.Uid != uid:
			// Its owner could replace the file before it is executed,
			// and run what it likes as the script's owner.
			return nil, refuse("directory %s is owned by uid %d, the script by uid %d", real, rst.Uid, uid)
		}
	}
	// No supplementary groups: the owner's group alone, as the file says.
	return &syscall.Credential{Uid: uid, Gid: gid}, nil
}
