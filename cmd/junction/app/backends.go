package app

import (
	"fmt"
	"log/slog"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/backends/cgi"
	"github.com/junction-gw/junction/config"
)

// newBackend builds the named backend from its configuration.
func newBackend(name string, b *config.Backend, log *slog.Logger) (backends.Backend, error) {
	log = log.With("backend", name)
	switch b.Type {
	case config.BackendCGI:
		return cgi.New(cgi.Options{
			Name:           name,
			Root:           b.Root,
			URLPrefix:      b.URLPrefix,
			Script:         b.Script,
			Timeout:        b.Timeout,
			MaxConcurrent:  b.MaxConcurrent,
			MaxQueue:       b.MaxQueue,
			QueueTimeout:   b.QueueTimeout,
			PassEnv:        b.PassEnv,
			SetEnv:         b.SetEnv,
			User:           b.User,
			Group:          b.Group,
			MaxHeaderBytes: b.MaxHeaderBytes,
			Logger:         log,
		})
	default:
		return nil, fmt.Errorf("backend type %q is not built into this junction", b.Type)
	}
}
