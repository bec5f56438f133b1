package backends

// Capacity is how many requests an application instance says it can serve
// at once, as its backend learned it by asking the instance (php-fpm's
// status page, FastCGI's FCGI_GET_VALUES).
type Capacity struct {
	// Max is the number of requests the instance serves at once; 0 when
	// the answer does not tell (Why says why).
	Max int
	// Idle is the number of the instance's workers that were idle when it
	// answered; -1 when it does not report them.
	Idle int
	// Source names what answered, for the status page: "status page"
	// or "FCGI_GET_VALUES".
	Source string
	// Why explains a Max of 0, for the status page: what the instance
	// reported instead ("pm = dynamic: total processes is not the
	// capacity").
	Why string
}
