package app

import (
	"strings"
	"testing"

	"github.com/junction-gw/junction/cmd/junction/internal/privdrop"
	"github.com/junction-gw/junction/config"
)

// TestScriptUserRunAsOwner: once junction has dropped to a user it cannot
// switch to each script's owner, so run_as owner and user_dir are refused
// then (junction check refuses them first; this is the in-process path).
func TestScriptUserRunAsOwner(t *testing.T) {
	nobody, err := privdrop.Lookup("nobody", "")
	if err != nil {
		t.Skip(err)
	}
	for _, b := range []*config.Backend{{RunAs: config.RunAsOwner}, {UserDir: "public_html"}} {
		if _, _, err := scriptUser(b, nobody); err == nil || !strings.Contains(err.Error(), "could then not switch to each script's owner") {
			t.Errorf("%+v after dropping privileges: %v", b, err)
		}
		if u, g, err := scriptUser(b, nil); err != nil || u != "" || g != "" {
			t.Errorf("%+v as root: %q %q %v", b, u, g, err)
		}
	}
}
