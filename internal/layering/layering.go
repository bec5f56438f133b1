// Package layering states the rule that keeps junction's dependencies
// pointing one way, as data its test checks against the real import graph
// (go list -deps):
//
//   - a codec (protocols/scgi, protocols/fastcgi, protocols/ajp13,
//     protocols/httpfront) imports no backend kind and no other codec;
//   - a backend kind (backends/cgi, backends/fastcgi, backends/httpbackend,
//     backends/spawn, backends/authorizer) imports no codec and nothing under protocols/;
//   - the balancer imports no codec and no backend kind: it knows only the
//     contract package backends.
//
// The contract package backends, the shared request model vars and the
// helpers under internal/ may be imported by every side.
package layering

import (
	"fmt"
	"slices"
	"strings"
)

// Module is junction's module path.
const Module = "github.com/junction-gw/junction"

// Codecs are the front-end codec packages, relative to Module.
var Codecs = []string{"protocols/scgi", "protocols/fastcgi", "protocols/ajp13", "protocols/httpfront"}

// BackendKinds are the backend packages, relative to Module.
var BackendKinds = []string{"backends/cgi", "backends/fastcgi", "backends/httpbackend", "backends/spawn", "backends/authorizer"}

// under reports whether pkg is dir or inside it.
func under(pkg, dir string) bool {
	return pkg == dir || strings.HasPrefix(pkg, dir+"/")
}

func inAny(pkg string, dirs []string) (string, bool) {
	for _, d := range dirs {
		if under(pkg, d) {
			return d, true
		}
	}
	return "", false
}

// Violations returns one line per forbidden edge in deps, which maps each
// package (relative to Module) to everything it depends on, directly or
// not (also relative; packages outside the module are ignored).
func Violations(deps map[string][]string) []string {
	var out []string
	for pkg, ds := range deps {
		for _, d := range ds {
			if why := forbidden(pkg, d); why != "" {
				out = append(out, fmt.Sprintf("%s imports %s: %s", pkg, d, why))
			}
		}
	}
	slices.Sort(out)
	return out
}

func forbidden(pkg, dep string) string {
	if codec, ok := inAny(pkg, Codecs); ok {
		if _, ok := inAny(dep, BackendKinds); ok {
			return "a codec must not depend on a backend"
		}
		if other, ok := inAny(dep, Codecs); ok && other != codec {
			return "a codec must not depend on another codec"
		}
		if under(dep, "backends/internal") {
			return "a codec must not depend on a backend's internals"
		}
	}
	if _, ok := inAny(pkg, BackendKinds); ok && under(dep, "protocols") {
		return "a backend must not depend on a codec (shared pieces live in vars or internal/)"
	}
	if under(pkg, "balancer") {
		if under(dep, "protocols") {
			return "the balancer must not depend on a codec"
		}
		if _, ok := inAny(dep, BackendKinds); ok {
			return "the balancer knows only the backends contract"
		}
	}
	return ""
}
