package fastcgi

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/junction-gw/junction/internal/fcgiwire"

	"github.com/junction-gw/junction/vars"
)

// readLen decodes one name-value length (fcgiwire.ReadLen) as a params error.
func readLen(b []byte) (n int, used int, err error) {
	n, used, err = fcgiwire.ReadLen(b)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errBadParams, err)
	}
	return n, used, nil
}

// parseNameValues decodes a complete name-value stream (all PARAMS or
// GET_VALUES content, concatenated). Pairs split across records are
// whole here because the caller concatenates first.
func parseNameValues(b []byte) (vars.Vars, error) {
	// One string for the whole stream: names and values share it, so a
	// request costs two allocations here instead of two per pair.
	return decodeNameValues(string(b), b)
}

// parseOwnedNameValues is parseNameValues for a buffer the caller hands
// over: the names and values point into b, which must never change again
// (a request's PARAMS, collected in a buffer of their own). It saves
// copying the stream once more.
func parseOwnedNameValues(b []byte) (vars.Vars, error) {
	if len(b) == 0 {
		return nil, nil
	}
	return decodeNameValues(unsafe.String(&b[0], len(b)), b)
}

// decodeNameValues decodes b, whose bytes all also holds.
func decodeNameValues(all string, b []byte) (vars.Vars, error) {
	var out vars.Vars
	if n := countPairs(b); n > 0 {
		out = make(vars.Vars, 0, n)
	}
	off := 0
	for len(b) > 0 {
		nl, vl, u, err := pairLens(b)
		if err != nil {
			return nil, err
		}
		b = b[u:]
		off += u
		if nl > len(b) || vl > len(b)-nl {
			return nil, fmt.Errorf("%w: name-value pair of %d+%d bytes overruns its %d-byte stream", errBadParams, nl, vl, len(b))
		}
		out = append(out, vars.Var{Name: all[off : off+nl], Value: all[off+nl : off+nl+vl]})
		b = b[nl+vl:]
		off += nl + vl
	}
	return out, nil
}

// pairLens reads the name and value lengths that start a pair, and how
// many bytes they took. Both short (one byte each) is nearly every pair a
// front server sends, and is decoded here without a call.
func pairLens(b []byte) (nl, vl, used int, err error) {
	if len(b) >= 2 && b[0] < 0x80 && b[1] < 0x80 {
		return int(b[0]), int(b[1]), 2, nil
	}
	nl, u1, err := readLen(b)
	if err != nil {
		return 0, 0, 0, err
	}
	vl, u2, err := readLen(b[u1:])
	if err != nil {
		return 0, 0, 0, err
	}
	return nl, vl, u1 + u2, nil
}

// countPairs returns how many whole pairs b starts with, so the result is
// allocated at its exact size (less to clear and for the GC to scan than
// an estimate). A malformed tail is parseNameValues' to report.
func countPairs(b []byte) int {
	n := 0
	for len(b) > 0 {
		nl, vl, u, err := pairLens(b)
		if err != nil || nl+vl > len(b)-u {
			break
		}
		b = b[u+nl+vl:]
		n++
	}
	return n
}

// appendNameValues encodes pairs in the shortest length form.
func appendNameValues(dst []byte, v vars.Vars) []byte {
	for _, kv := range v {
		dst = fcgiwire.AppendPair(dst, kv.Name, kv.Value)
	}
	return dst
}

// stripProxyScheme removes the "proxy:fcgi://host:port" (or
// "proxy:balancer://name") prefix Apache mod_proxy_fcgi puts in front of
// SCRIPT_FILENAME, leaving the absolute path, as php-fpm does.
func stripProxyScheme(s string) string {
	for _, p := range []string{"proxy:fcgi://", "proxy:balancer://"} {
		rest, ok := strings.CutPrefix(s, p)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return ""
	}
	return s
}
