package balancer

import (
	"errors"
	"net/http"
	"time"

	"github.com/junction-gw/junction/backends"
)

// recordAttempt counts an attempt on u for its sparklines: one that says
// something about the instance (it answered, or it failed), as Requests
// and Failures count them.
func (u *upstream) recordAttempt(end time.Time, took time.Duration, oc outcome) {
	if oc != outcomeNeutral {
		u.spark.Record(end, took, oc == outcomeFail)
	}
}

// recordRequest counts a request through the pool for its sparklines. It
// is an error when the pool answered it with a server error (no instance,
// overloaded, the last attempt failed); a local redirect, a 4xx and the
// client's own failures are not. A response the application wrote,
// whatever its status, is a success here.
// end is when the last attempt ended, zero without an attempt.
func (p *Pool) recordRequest(r *http.Request, begun, end time.Time, err error) {
	if end.IsZero() {
		end = p.clock.Now()
	}
	p.spark.Record(end, end.Sub(begun), err != nil && serverError(r, err))
}

func serverError(r *http.Request, err error) bool {
	var lr *backends.LocalRedirect
	if errors.As(err, &lr) || backends.IsClientError(err) || r.Context().Err() != nil {
		return false
	}
	return backends.Status(err) >= 500
}
