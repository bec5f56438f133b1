package metrics

import "github.com/prometheus/client_golang/prometheus"

// Authorizer returns the observer counting what the authorizer of the
// route with prefix route decided.
func (m *Metrics) Authorizer(route string) *AuthorizerObserver {
	return &AuthorizerObserver{
		allowed: m.authz.WithLabelValues(route, "allowed"),
		denied:  m.authz.WithLabelValues(route, "denied"),
		failed:  m.authz.WithLabelValues(route, "error"),
	}
}

// AuthorizerObserver counts one route authorizer's outcomes.
type AuthorizerObserver struct {
	allowed, denied, failed prometheus.Counter
}

// Allowed counts a request the authorizer let through.
func (o *AuthorizerObserver) Allowed() { o.allowed.Inc() }

// Denied counts a request answered with the authorizer's own answer.
func (o *AuthorizerObserver) Denied() { o.denied.Inc() }

// Failed counts a request the authorizer could not decide.
func (o *AuthorizerObserver) Failed() { o.failed.Inc() }
