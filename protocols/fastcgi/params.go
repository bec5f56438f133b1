package fastcgi

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/junction-gw/junction/protocols/vars"
)

// maxNameValueLen is the largest length a 4-byte name-value length can
// carry (the top bit marks the long form).
const maxNameValueLen = 1<<31 - 1

// readLen decodes one name-value length: one byte when below 128, else
// four bytes with the top bit set.
func readLen(b []byte) (n int, used int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: truncated name-value length", errBadParams)
	}
	if b[0]&0x80 == 0 {
		return int(b[0]), 1, nil
	}
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("%w: truncated 4-byte name-value length", errBadParams)
	}
	return int(binary.BigEndian.Uint32(b) & maxNameValueLen), 4, nil
}

// parseNameValues decodes a complete name-value stream (all PARAMS or
// GET_VALUES content, concatenated). Pairs split across records are
// whole here because the caller concatenates first.
func parseNameValues(b []byte) (vars.Vars, error) {
	// One string for the whole stream: names and values share it, so a
	// request costs two allocations here instead of two per pair.
	all := string(b)
	var out vars.Vars
	if len(all) > 0 {
		out = make(vars.Vars, 0, len(all)/24+1) // nginx's pairs average ~30 bytes
	}
	off := 0
	for len(b) > 0 {
		nl, u1, err := readLen(b)
		if err != nil {
			return nil, err
		}
		b = b[u1:]
		vl, u2, err := readLen(b)
		if err != nil {
			return nil, err
		}
		b = b[u2:]
		off += u1 + u2
		if nl > len(b) || vl > len(b)-nl {
			return nil, fmt.Errorf("%w: name-value pair of %d+%d bytes overruns its %d-byte stream", errBadParams, nl, vl, len(b))
		}
		out = append(out, vars.Var{Name: all[off : off+nl], Value: all[off+nl : off+nl+vl]})
		b = b[nl+vl:]
		off += nl + vl
	}
	return out, nil
}

func appendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// appendNameValues encodes pairs in the shortest length form.
func appendNameValues(dst []byte, v vars.Vars) []byte {
	for _, kv := range v {
		dst = appendLen(dst, len(kv.Name))
		dst = appendLen(dst, len(kv.Value))
		dst = append(dst, kv.Name...)
		dst = append(dst, kv.Value...)
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
