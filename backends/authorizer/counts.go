package authorizer

import "sync/atomic"

// Counts are an authorizer's outcomes, kept with atomic counters beside
// its Observer for a status page. A Counts may outlive the Authorizer
// that counts into it: the composition root keeps one per route across
// reloads, which build authorizers anew. The zero value is ready; it is
// safe for concurrent use.
type Counts struct {
	allowed, denied, failed atomic.Int64
}

// Stats are a snapshot of Counts.
type Stats struct {
	// Allowed are requests the authorizer let through.
	Allowed int64 `json:"allowed"`
	// Denied are requests answered with the authorizer's own answer.
	Denied int64 `json:"denied"`
	// Errors are requests the authorizer could not decide (down, too
	// slow, broken answer): failed with 502, 503 or 504.
	Errors int64 `json:"errors"`
}

// Stats returns the counts so far.
func (c *Counts) Stats() Stats {
	return Stats{Allowed: c.allowed.Load(), Denied: c.denied.Load(), Errors: c.failed.Load()}
}
