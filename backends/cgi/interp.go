package cgi

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// interpreters maps a lower-case file extension with its dot (".php") to
// the command that runs scripts with it: COMMAND... SCRIPT, as lighttpd's
// cgi.assign and Apache's Action do. Such a script needs to be readable by
// the user it runs as, not executable.
type interpreters map[string][]string

// newInterpreters checks m: extensions like ".php", commands starting with
// the absolute path of an executable file. Extensions are folded to lower
// case (the configuration's keys already are).
func newInterpreters(m map[string][]string) (interpreters, []error) {
	if len(m) == 0 {
		return nil, nil
	}
	in := make(interpreters, len(m))
	var errs []error
	for _, ext := range slices.Sorted(maps.Keys(m)) {
		cmd := m[ext]
		if err := checkInterpreter(ext, cmd); err != nil {
			errs = append(errs, fmt.Errorf("interpreters %q: %w", ext, err))
			continue
		}
		key := strings.ToLower(ext)
		if _, dup := in[key]; dup {
			errs = append(errs, fmt.Errorf("interpreters %q: given twice (extensions match ignoring case)", ext))
			continue
		}
		in[key] = slices.Clone(cmd)
	}
	return in, errs
}

// validExtension reports whether ext is a dot and at least one character
// that is neither a dot, a slash nor NUL.
func validExtension(ext string) bool {
	return len(ext) >= 2 && ext[0] == '.' && !strings.ContainsAny(ext[1:], "./\x00")
}

func checkInterpreter(ext string, cmd []string) error {
	if !validExtension(ext) {
		return fmt.Errorf("not an extension like \".php\"")
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return fmt.Errorf("no command")
	}
	if !filepath.IsAbs(cmd[0]) {
		return fmt.Errorf("command %q must be an absolute path", cmd[0])
	}
	for _, a := range cmd {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("NUL in command %q", a)
		}
	}
	fi, err := os.Stat(cmd[0])
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("command %s is not an executable file", cmd[0])
	}
	return nil
}

// lookup returns the command for a script whose file name is name, or nil
// when its extension is not mapped.
func (in interpreters) lookup(name string) []string {
	if len(in) == 0 {
		return nil
	}
	ext := filepath.Ext(name)
	if len(ext) < 2 {
		return nil
	}
	if cmd, ok := in[ext]; ok {
		return cmd
	}
	if strings.ToLower(ext) == ext {
		return nil
	}
	return in[strings.ToLower(ext)]
}

// commandLine is the argv that runs script with cmd.
func commandLine(cmd []string, script string) []string {
	argv := make([]string, len(cmd)+1)
	copy(argv, cmd)
	argv[len(cmd)] = script
	return argv
}

// access is who scripts run as when not as their owner, for the check
// that an interpreted script can be read.
type access struct {
	uid    uint32
	groups []uint32 // primary and supplementary
}

// initAccess records who scripts run as; b.cred is set.
func (b *Backend) initAccess() {
	if b.cred != nil {
		b.access = access{uid: b.cred.Uid, groups: []uint32{b.cred.Gid}}
		return
	}
	b.access = access{uid: uint32(os.Geteuid()), groups: []uint32{uint32(os.Getegid())}}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			b.access.groups = append(b.access.groups, uint32(g))
		}
	}
}

// readable reports whether the user scripts run as may read the file fi
// describes, by its permission bits (as the kernel decides: the owner's
// bits for the owner, the group's for a member, the others' otherwise).
func (a access) readable(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if a.uid == 0 || !ok {
		return true
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == a.uid:
		return mode&0o400 != 0
	case slices.Contains(a.groups, st.Gid):
		return mode&0o040 != 0
	}
	return mode&0o004 != 0
}
