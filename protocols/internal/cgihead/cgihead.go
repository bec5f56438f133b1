// Package cgihead writes the CGI-style response head (RFC 3875 section 6.3)
// that junction's SCGI and FastCGI front ends send to the web server, and
// holds the rule all of junction's codecs apply to a handler's WriteHeader
// code (ValidStatus, InvalidStatus).
//
// The head is a "Status: NNN Reason" line (required by the SCGI spec; nginx,
// Apache and lighttpd read it on FastCGI too), the header fields sorted by
// name, and an empty line; lines end in CRLF. A field that could split the
// head is left out: a name that is not an RFC 9110 token, a value holding
// CR, LF or NUL (vars.ValidToken, vars.ValidValue).
package cgihead

import (
	"bufio"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/junction-gw/junction/vars"
)

// ValidStatus reports whether a handler's WriteHeader code may be sent:
// 100–999, the codes net/http's server accepts (it panics on others).
func ValidStatus(code int) bool { return code >= 100 && code <= 999 }

// InvalidStatus is the rule for a WriteHeader code that is not
// ValidStatus, the same in every codec (SCGI, FastCGI, AJP13): it is a
// handler bug, and a gateway must neither crash the connection nor pass
// on a code no web server parses. It logs one error line on log (nil:
// slog.Default()) with attrs and returns 500 Internal Server Error, the
// status to send instead.
func InvalidStatus(code int, log *slog.Logger, attrs ...any) int {
	if log == nil {
		log = slog.Default()
	}
	log.Error("invalid WriteHeader code from the handler; sending 500", append(attrs, "code", code)...)
	return http.StatusInternalServerError
}

// Write writes the head of a response with status and header h to bw. A
// "Status" field in h is left out (status decides), and so is every field
// with an invalid name or value; Write returns the names of those (nil
// when there are none), so the codec can log one line. Errors are bw's:
// they show at its next write or flush.
func Write(bw *bufio.Writer, status int, h http.Header) (dropped []string) {
	bw.WriteString("Status: ")
	if status >= 100 && status <= 999 {
		// Digit by digit: strconv.Itoa allocates for numbers above 99.
		bw.WriteByte(byte('0' + status/100))
		bw.WriteByte(byte('0' + status/10%10))
		bw.WriteByte(byte('0' + status%10))
	} else {
		bw.WriteString(strconv.Itoa(status))
	}
	if text := http.StatusText(status); text != "" {
		bw.WriteByte(' ')
		bw.WriteString(text)
	}
	bw.WriteString("\r\n")
	// Sorted for a stable head; a stack array holds the usual few names.
	var arr [16]string
	names := arr[:0]
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.EqualFold(name, "Status") {
			continue
		}
		if !vars.ValidToken(name) {
			dropped = append(dropped, name)
			continue
		}
		for i, v := range h[name] {
			if !vars.ValidValue(v) {
				if i == 0 || !slices.Contains(dropped, name) {
					dropped = append(dropped, name)
				}
				continue
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return dropped
}
