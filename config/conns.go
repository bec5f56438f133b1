package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Conns is a count of connections or requests that may also be written
// "auto" in the file (ConnsAuto): max_conns and keepalive of a pool.
type Conns int

// ConnsAuto is a Conns written "auto". For max_conns it means: learn the
// bound from each instance (php-fpm's status page, FCGI_GET_VALUES); for
// keepalive: keep every connection whose request ended, which max_conns
// bounds. It is no number a file can hold, so a negative number stays a
// number for Validate to refuse with the others.
const ConnsAuto Conns = math.MinInt32

// Auto reports whether c was written "auto".
func (c Conns) Auto() bool { return c == ConnsAuto }

// String renders c as the file writes it.
func (c Conns) String() string {
	if c.Auto() {
		return "auto"
	}
	return strconv.Itoa(int(c))
}

// connsHook decodes a Conns from a number or the string "auto" (any
// case); a number in a string (from ${VAR}) is a number. Negative numbers
// pass, for Validate.
func connsHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[Conns]() {
		return data, nil
	}
	v := reflect.ValueOf(data)
	var n int64
	switch {
	case from.Kind() == reflect.String:
		s := strings.TrimSpace(v.String())
		if strings.EqualFold(s, "auto") {
			return ConnsAuto, nil
		}
		i, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q: want a number or auto", data)
		}
		n = i
	case v.CanInt():
		n = v.Int()
	case v.CanUint():
		if v.Uint() > math.MaxInt32 {
			return nil, fmt.Errorf("%v: too large", data)
		}
		n = int64(v.Uint())
	case v.CanFloat():
		f := v.Float()
		if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
			return nil, fmt.Errorf("%v: want a whole number or auto", data)
		}
		n = int64(f)
	default:
		return data, nil
	}
	if n > math.MaxInt32 || n < -math.MaxInt32 {
		return nil, fmt.Errorf("%d: want a count or auto", n)
	}
	return Conns(n), nil
}

// conns checks a Conns that is a number: it must not be negative.
func (v *validator) conns(key string, c Conns) {
	if !c.Auto() {
		v.nonNegative(key, int(c))
	}
}

// autoConns reports whether the backend or one of its instances has
// max_conns: auto.
func (b *Backend) autoConns() bool {
	if b.MaxConns.Auto() {
		return true
	}
	for _, in := range b.Instances {
		if in.MaxConns.Auto() {
			return true
		}
	}
	return false
}

// validateCapacity checks max_conns: auto, max_conns_fallback and
// health.status_path, which learn an instance's capacity. Only fastcgi
// instances can be asked (php-fpm's status page, FCGI_GET_VALUES).
func (b *Backend) validateCapacity(v *validator, key string) {
	v.conns(key+".max_conns", b.MaxConns)
	for i, in := range b.Instances {
		v.conns(fmt.Sprintf("%s.instances[%d].max_conns", key, i), in.MaxConns)
	}
	auto := b.autoConns()
	if b.Type != BackendFastCGI {
		if b.MaxConns.Auto() {
			v.add(key+".max_conns", "auto applies to type fastcgi only (php-fpm's status page, FCGI_GET_VALUES)")
		}
		for i, in := range b.Instances {
			if in.MaxConns.Auto() {
				v.add(fmt.Sprintf("%s.instances[%d].max_conns", key, i), "auto applies to type fastcgi only (php-fpm's status page, FCGI_GET_VALUES)")
			}
		}
		v.onlyFor(key, "type fastcgi", []setting{
			{"max_conns_fallback", b.MaxConnsFallback != 0}, {"health.status_path", b.Health.StatusPath != ""},
		})
		return
	}
	switch {
	case auto && b.MaxConnsFallback == 0:
		v.add(key+".max_conns_fallback", "required with max_conns: auto: the bound on an instance's requests while its capacity is unknown (php-fpm with pm = dynamic or ondemand, or not answering yet)")
	case auto && b.MaxConnsFallback < 0:
		v.add(key+".max_conns_fallback", "%d: want a positive count", b.MaxConnsFallback)
	case !auto && b.MaxConnsFallback != 0:
		v.add(key+".max_conns_fallback", "applies with max_conns: auto only")
	}
	if p := b.Health.StatusPath; p != "" {
		switch {
		case !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\x00"):
			v.add(key+".health.status_path", "%q must start with / and hold no query (php-fpm's pm.status_path, e.g. /status)", p)
		case !auto:
			v.add(key+".health.status_path", "applies with max_conns: auto only: it is where the capacity is asked")
		}
	}
}
