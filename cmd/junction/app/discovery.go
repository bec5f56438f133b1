package app

import (
	"github.com/junction-gw/junction/cmd/junction/internal/poolunit"
	"github.com/junction-gw/junction/cmd/junction/internal/status"
)

// sourceStatus maps where a pool's instances come from to the status
// page's fields.
func sourceStatus(src poolunit.Source) (string, *status.Discovery) {
	d := src.Discovery
	if d == nil {
		return src.Kind, nil
	}
	return src.Kind, &status.Discovery{
		Name: d.Name, Resolver: d.Server, RefreshSeconds: d.Refresh.Seconds(),
		LastRefresh: d.LastRefresh, Instances: d.Instances, Failing: d.Failing,
		LastError: d.LastError, LastErrorTime: d.LastErrorAt, Pending: src.Pending,
	}
}
