package cgi

import (
	"errors"
	"io"
	"log/slog"
)

// maxStderrLine bounds one logged stderr line.
const maxStderrLine = 1024

// stderrLog logs a script's stderr line by line; a line longer than
// maxStderrLine is logged cut (truncated=true) and the rest of it dropped.
// It keeps an unfinished line between drain calls.
type stderrLog struct {
	log    *slog.Logger
	script string
	buf    []byte // an unfinished line; allocated at the first output
	n      int
	skip   bool // dropping the rest of a line logged cut
}

// drain reads r until it ends (nil) or fails (the error; errWouldBlock
// when a non-blocking r has nothing yet). The unfinished line is logged
// when r ends or fails for good.
func (l *stderrLog) drain(r io.Reader) error {
	var first [64]byte // most scripts write nothing: a read finds the end
	for {
		var m int
		var err error
		if l.buf == nil {
			m, err = r.Read(first[:])
			if m > 0 {
				l.buf = make([]byte, maxStderrLine)
				l.n = copy(l.buf, first[:m])
			}
		} else {
			m, err = r.Read(l.buf[l.n:])
			l.n += m
		}
		l.lines()
		if err != nil {
			if !errors.Is(err, errWouldBlock) {
				if l.n > 0 && !l.skip {
					l.emit(l.buf[:l.n], false)
				}
				l.n = 0
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// lines logs the complete lines in buf and keeps the rest.
func (l *stderrLog) lines() {
	start := 0
	for i := 0; i < l.n; i++ {
		if l.buf[i] != '\n' {
			continue
		}
		if !l.skip {
			l.emit(l.buf[start:i], false)
		}
		l.skip = false
		start = i + 1
	}
	l.n = copy(l.buf, l.buf[start:l.n])
	if l.n == len(l.buf) && l.n > 0 {
		if !l.skip {
			l.emit(l.buf, true)
		}
		l.skip = true
		l.n = 0
	}
}

func (l *stderrLog) emit(line []byte, truncated bool) {
	l.log.Warn("cgi: script stderr", "script", l.script, "line", string(line), "truncated", truncated)
}
