package scgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/junction-gw/junction/vars"
)

// Errors wrapped by the request decoder; the connection is closed with the
// reason logged.
var (
	ErrMalformed     = errors.New("scgi: malformed request")
	ErrHeaderTooBig  = errors.New("scgi: request header too large")
	ErrShortBody     = errors.New("scgi: request body shorter than CONTENT_LENGTH")
	errMissingLength = errors.New("first variable is not CONTENT_LENGTH")

	// Finer kinds of ErrMalformed, for Reason.
	errBadNetstring = fmt.Errorf("%w: bad netstring", ErrMalformed)
	errBadVars      = fmt.Errorf("%w: bad variable block", ErrMalformed)
	errNoSCGI       = fmt.Errorf("%w: SCGI variable missing or not \"1\"", ErrMalformed)
	errBadRequest   = fmt.Errorf("%w: invalid request variables", ErrMalformed)
	errBadLength    = fmt.Errorf("%w: bad CONTENT_LENGTH", ErrMalformed)
)

// maxLenDigits bounds the netstring length prefix independently of the
// configured limit, so a peer cannot make us scan an endless digit run.
const maxLenDigits = 10

// blockPool holds head buffers; they grow to the largest head seen, which
// MaxHeaderBytes bounds.
var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readHead reads the netstring-framed variable block from br and returns the
// variables (wire order, names unique except HTTP_*) and CONTENT_LENGTH.
// limit bounds the block length and is checked before allocating.
func readHead(br *bufio.Reader, limit int) (vars.Vars, int64, error) {
	n, err := readLength(br, limit)
	if err != nil {
		return nil, 0, err
	}
	// The block is read into a pooled buffer and converted to one string
	// that every name and value then slices: one allocation for all.
	bp := blockPool.Get().(*[]byte)
	defer blockPool.Put(bp)
	if cap(*bp) < n+1 {
		*bp = make([]byte, n+1)
	}
	block := (*bp)[:n+1] // the block and its trailing comma
	if _, err := io.ReadFull(br, block); err != nil {
		return nil, 0, fmt.Errorf("%w: header block: %w", errBadNetstring, noEOF(err))
	}
	if block[n] != ',' {
		return nil, 0, fmt.Errorf("%w: not terminated by ','", errBadNetstring)
	}
	return parseBlock(string(block[:n]))
}

// readLength reads the decimal netstring length and its ':'.
func readLength(br *bufio.Reader, limit int) (int, error) {
	n, digits := 0, 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			if digits == 0 && err == io.EOF {
				return 0, io.EOF // peer connected and left: not an error worth a line
			}
			return 0, fmt.Errorf("%w: length prefix: %w", errBadNetstring, noEOF(err))
		}
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && n == 0 {
				return 0, fmt.Errorf("%w: length has a leading zero", errBadNetstring)
			}
			digits++
			if digits > maxLenDigits {
				return 0, fmt.Errorf("%w: netstring length has too many digits", ErrHeaderTooBig)
			}
			n = n*10 + int(c-'0')
			if n > limit {
				return 0, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooBig, limit)
			}
		case c == ':' && digits > 0:
			return n, nil
		default:
			return 0, fmt.Errorf("%w: unexpected byte %q in netstring length", errBadNetstring, c)
		}
	}
}

// parseBlock splits "name\0value\0..." into variables and validates the
// SCGI rules: CONTENT_LENGTH first, SCGI=1 present, no repeated CGI
// variable (repeated HTTP_* names are kept: nginx repeats them for a
// repeated request header).
func parseBlock(s string) (vars.Vars, int64, error) {
	if s == "" || s[len(s)-1] != 0 {
		return nil, 0, fmt.Errorf("%w: does not end with NUL", errBadVars)
	}
	v := make(vars.Vars, 0, strings.Count(s, "\x00")/2)
	for rest := s; rest != ""; {
		name, after, _ := strings.Cut(rest, "\x00")
		value, next, ok := strings.Cut(after, "\x00")
		if !ok {
			return nil, 0, fmt.Errorf("%w: variable %.64q has no value", errBadVars, name)
		}
		if name == "" {
			return nil, 0, fmt.Errorf("%w: empty variable name", errBadVars)
		}
		v = append(v, vars.Var{Name: name, Value: value})
		rest = next
	}
	if v[0].Name != "CONTENT_LENGTH" {
		return nil, 0, fmt.Errorf("%w: %w (got %.64q)", ErrMalformed, errMissingLength, v[0].Name)
	}
	cl, err := parseLength(v[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("%w %.32q", errBadLength, v[0].Value)
	}
	if err := v.Check(); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if s, _ := v.Lookup("SCGI"); s != "1" {
		return nil, 0, errNoSCGI
	}
	return v, cl, nil
}

// parseLength accepts only plain decimal digits (no sign, no spaces).
func parseLength(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendHead encodes v as an SCGI request head (netstring). It is the
// inverse of readHead, used by tests, fuzzing and junction's own clients.
func appendHead(dst []byte, v vars.Vars) []byte {
	n := 0
	for _, kv := range v {
		n += len(kv.Name) + len(kv.Value) + 2
	}
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, ':')
	for _, kv := range v {
		dst = append(dst, kv.Name...)
		dst = append(dst, 0)
		dst = append(dst, kv.Value...)
		dst = append(dst, 0)
	}
	return append(dst, ',')
}
