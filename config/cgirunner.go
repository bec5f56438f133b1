package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
)

// Command is a program and its arguments: in the file either a string
// (the program's absolute path alone) or a list.
type Command []string

// RunAsOwner is the run_as value that runs each script as its file's
// owner.
const RunAsOwner = "owner"

// defaultMinID is the default min_uid and min_gid: the first regular
// account on Debian and most distributions (UID_MIN, GID_MIN in
// login.defs), below which system accounts live.
const defaultMinID = 1000

// commandHook decodes a Command given as one string.
func commandHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Command]() || from.Kind() != reflect.String {
		return data, nil
	}
	return Command{data.(string)}, nil
}

// setRunnerDefaults is setDefaults for interpreters, run_as and user_dir
// (cgi only).
func (b *Backend) setRunnerDefaults() {
	if b.UserDir != "" && b.URLPrefix == "" {
		b.URLPrefix = "/" // "/~alice/", as Apache's UserDir
	}
	if b.RunAs == "" && b.UserDir == "" {
		return // min_uid and min_gid stay as the file set them: Validate names them
	}
	if b.MinUID == 0 {
		b.MinUID = defaultMinID
	}
	if b.MinGID == 0 {
		b.MinGID = defaultMinID
	}
}

// runnerSettings are the cgi-only keys of this file, for the pool types'
// check.
func (b *Backend) runnerSettings() []setting {
	return []setting{
		{"interpreters", len(b.Interpreters) > 0}, {"run_as", b.RunAs != ""},
		{"min_uid", b.MinUID != 0}, {"min_gid", b.MinGID != 0}, {"user_dir", b.UserDir != ""},
	}
}

// validateRunner checks interpreters, run_as, min_uid, min_gid and
// user_dir of a cgi backend.
func (b *Backend) validateRunner(v *validator, key string) {
	for _, ext := range sortedKeys(b.Interpreters) {
		k := key + ".interpreters." + ext
		cmd := b.Interpreters[ext]
		switch {
		case len(ext) < 2 || ext[0] != '.' || strings.ContainsAny(ext[1:], "./\x00"):
			v.add(k, "%q is not a file extension like \".php\"", ext)
		case len(cmd) == 0 || cmd[0] == "":
			v.add(k, "a command is required (a path, or a list of it and its arguments)")
		case len(cmd) == 1 && strings.ContainsAny(cmd[0], " \t"):
			v.add(k, "%q: give the command and its arguments as a list, like [/usr/bin/python3, -u]", cmd[0])
		case !filepath.IsAbs(cmd[0]):
			v.add(k, "%q must be an absolute path", cmd[0])
		}
	}
	switch b.RunAs {
	case "", RunAsOwner:
	default:
		v.add(key+".run_as", "%q is not %q (the only value; leave it out to use user and group)", b.RunAs, RunAsOwner)
	}
	if b.RunAs != "" && (b.User != "" || b.Group != "") {
		v.add(key+".run_as", "excludes user and group: each script runs as its file's owner")
	}
	for _, id := range []struct {
		name string
		n    int
	}{{"min_uid", b.MinUID}, {"min_gid", b.MinGID}} {
		switch {
		case id.n != 0 && b.RunAs == "" && b.UserDir == "":
			v.add(key+"."+id.name, "applies with run_as or user_dir only")
		case id.n < 0 || id.n > math.MaxUint32-1:
			v.add(key+"."+id.name, "%d is not a %s id", id.n, strings.TrimPrefix(id.name, "min_"))
		}
	}
	if b.UserDir == "" {
		return
	}
	if b.Script != "" {
		v.add(key+".user_dir", "does not go with script (set root, or nothing, beside it)")
	}
	if d := b.UserDir; filepath.IsAbs(d) || filepath.Clean(d) != d || d == "." || d == ".." || strings.HasPrefix(d, "../") ||
		strings.ContainsRune(d, 0) {
		v.add(key+".user_dir", "%q must be a clean path relative to the home directory, like public_html", d)
	}
}

// checkRunnerIdentity reports the cgi backends whose scripts run as each
// file's owner (run_as owner, user_dir) when junction cannot switch to
// them: it does not run as root, or it drops to the top-level user after
// binding.
func (c *Config) checkRunnerIdentity(euid int) []error {
	var errs []error
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		if b == nil || b.Type != BackendCGI || b.RunAs == "" && b.UserDir == "" {
			continue
		}
		key := "backends." + name + ".run_as"
		if b.RunAs == "" {
			key = "backends." + name + ".user_dir"
		}
		switch {
		case euid != 0:
			errs = append(errs, fmt.Errorf("%s: needs junction to run as root (it runs as uid %d) to switch to each script's owner", key, euid))
		case c.User != "" && !isRoot(c.User):
			errs = append(errs, fmt.Errorf("%s: junction drops to user %q after binding and could then not switch to each script's owner; remove the top-level user", key, c.User))
		}
	}
	return errs
}

// interpreterWarnings names the interpreters that someone other than root
// could replace: an interpreter runs every mapped script, as every user
// scripts run as (with run_as: owner, every script owner), so whoever may
// write the program, or the directory holding it, runs code as all of
// them. A program that cannot be read now is left to the start to report.
func (c *Config) interpreterWarnings() []string {
	var out []string
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		if b == nil || b.Type != BackendCGI {
			continue
		}
		for _, ext := range sortedKeys(b.Interpreters) {
			cmd := b.Interpreters[ext]
			if len(cmd) == 0 || !filepath.IsAbs(cmd[0]) {
				continue
			}
			if why := replaceableBy(cmd[0]); why != "" {
				out = append(out, fmt.Sprintf("backends.%s.interpreters[%q]: %s %s: it runs every %s script", name, ext, cmd[0], why, ext))
			}
		}
	}
	return out
}

// replaceableBy says who other than root may change the program at path
// (after following symlinks) or the directory holding it, or "".
func replaceableBy(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	for _, p := range []string{real, filepath.Dir(real)} {
		fi, err := os.Stat(p)
		if err != nil {
			return ""
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
			return fmt.Sprintf("is writable by group or others (%s %v)", p, fi.Mode().Perm())
		case ok && st.Uid != 0:
			return fmt.Sprintf("is owned by uid %d, not root (%s)", st.Uid, p)
		}
	}
	return ""
}
