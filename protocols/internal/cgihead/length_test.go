package cgihead

import (
	"net/http"
	"strings"
	"testing"
)

func TestLength(t *testing.T) {
	tests := []struct {
		name     string
		header   []string // Content-Length values
		writes   []string
		want     string // what goes out
		declared int64
		over     bool
	}{
		{"none declared", nil, []string{"any", "thing"}, "anything", -1, false},
		{"exact", []string{"5"}, []string{"hel", "lo"}, "hello", 5, false},
		{"short", []string{"5"}, []string{"hel"}, "hel", 5, false},
		{"over in one write", []string{"5"}, []string{"hello world"}, "hello", 5, true},
		{"over across writes", []string{"5"}, []string{"hel", "lo w", "orld"}, "hello", 5, true},
		{"zero", []string{"0"}, []string{"x"}, "", 0, true},
		{"malformed", []string{"5x"}, []string{"hello world"}, "hello world", -1, false},
		{"signed", []string{"+5"}, []string{"hello world"}, "hello world", -1, false},
		{"negative", []string{"-1"}, []string{"hello world"}, "hello world", -1, false},
		{"repeated alike", []string{"5", "5"}, []string{"hello world"}, "hello", 5, true},
		{"repeated unlike", []string{"5", "6"}, []string{"hello world"}, "hello world", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l Length
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("Content-Length", v)
			}
			l.Declare(h)
			var out strings.Builder
			firsts := 0
			for _, w := range tc.writes {
				keep, first := l.Cut([]byte(w))
				out.Write(keep)
				if first {
					firsts++
				}
			}
			if out.String() != tc.want || l.Declared() != tc.declared || l.Over() != tc.over {
				t.Errorf("out %q declared %d over %v, want %q %d %v", out.String(), l.Declared(), l.Over(), tc.want, tc.declared, tc.over)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.over]; firsts != want {
				t.Errorf("first reported %d times, want %d", firsts, want)
			}
			if l.Written() != int64(len(tc.want)) {
				t.Errorf("Written = %d, want %d", l.Written(), len(tc.want))
			}
		})
	}
}
