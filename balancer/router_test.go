package balancer

import (
	"context"
	"errors"
	"go/build"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/junction-gw/junction/backends"
	"github.com/junction-gw/junction/vars"
)

// TestRouterDispatchesRedirectAsBuilt: the router serves the request a
// backend built for its local redirect exactly as it is: same request,
// same variables, nothing patched; the first request is left alone too.
func TestRouterDispatchesRedirectAsBuilt(t *testing.T) {
	frontVars := vars.Vars{{Name: "SCRIPT_FILENAME", Value: "/srv/old.cgi"}, {Name: "REQUEST_URI", Value: "/old"}}
	// Deliberately not what a CGI backend would make: the router must not
	// know or care.
	nextVars := vars.Vars{{Name: "REQUEST_URI", Value: "/stale"}, {Name: "SCRIPT_FILENAME", Value: "/srv/old.cgi"}, {Name: "X", Value: "y"}}
	var next *http.Request
	redirecting := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		next = httptest.NewRequest(http.MethodPost, "/new?a=1", nil).WithContext(vars.NewContext(r.Context(), nextVars))
		return &backends.LocalRedirect{Location: "/new?a=1", Request: next}
	})
	var got *http.Request
	target := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		got = r
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	rt := &Router{Routes: []Route{{Prefix: "/old", Backend: redirecting}, {Prefix: "/new", Backend: target}}}

	first := httptest.NewRequest(http.MethodPost, "/old", nil)
	first = first.WithContext(vars.NewContext(first.Context(), slices.Clone(frontVars)))
	w := httptest.NewRecorder()
	if err := rt.Serve(w, first); err != nil {
		t.Fatal(err)
	}
	if got != next {
		t.Fatalf("target served %p, want the backend's request %p", got, next)
	}
	if v := vars.FromContext(got.Context()); !reflect.DeepEqual(v, nextVars) {
		t.Errorf("redirect variables %q, want %q unchanged", v, nextVars)
	}
	// The method too is the backend's decision (a CGI backend makes GET).
	if got.Method != http.MethodPost || got.URL.String() != "/new?a=1" {
		t.Errorf("request %s %s changed", got.Method, got.URL)
	}
	if v := vars.FromContext(first.Context()); !reflect.DeepEqual(v, frontVars) || first.URL.Path != "/old" {
		t.Errorf("first request changed: %s %q", first.URL, v)
	}
	if w.Code != http.StatusNoContent {
		t.Errorf("status %d", w.Code)
	}
}

func TestRouterRedirectLimits(t *testing.T) {
	loop := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		return &backends.LocalRedirect{Location: "/loop", Request: r}
	})
	served := 0
	counting := backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		served++
		return loop(w, r)
	})
	rt := &Router{Default: counting, MaxRedirects: 3}
	err := rt.Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/loop", nil))
	if !errors.Is(err, ErrTooManyRedirects) || backends.Status(err) != http.StatusInternalServerError || served != 4 {
		t.Errorf("Serve = %v after %d serves, want ErrTooManyRedirects (500) after 4", err, served)
	}

	// A backend that returns no request is a bug: 502, not a panic.
	rt = &Router{Default: backends.Func(func(w http.ResponseWriter, r *http.Request) error {
		return &backends.LocalRedirect{Location: "/x"}
	})}
	err = rt.Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(context.Background()))
	if backends.Status(err) != http.StatusBadGateway {
		t.Errorf("Serve = %v, want 502", err)
	}
}

// TestBalancerKnowsNoVariables: the balancer depends on the backend
// contract only; the CGI variables are the backends' business.
func TestBalancerKnowsNoVariables(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(pkg.Imports, "github.com/junction-gw/junction/vars") {
		t.Error("package balancer imports vars")
	}
}

// TestRouterMatchesCleanPath: a route is chosen by the path with its empty,
// "." and ".." segments resolved, as nginx matches locations. A CGI
// backend skips such segments when it walks its root, so a request for
// "/cgi-bin//reports/x.cgi" runs reports/x.cgi: it must get the reports
// route (its limits, timeout, max_concurrent, authorizer), not the default.
func TestRouterMatchesCleanPath(t *testing.T) {
	var got string
	named := func(name string) backends.Backend {
		return backends.Func(func(w http.ResponseWriter, r *http.Request) error {
			got = name
			return nil
		})
	}
	rt := &Router{Routes: []Route{{Prefix: "/cgi-bin/reports/", Backend: named("reports")}, {Prefix: "/app", Backend: named("app")}},
		Default: named("default")}
	for _, tc := range []struct{ path, want string }{
		{"/cgi-bin/reports/x.cgi", "reports"},
		{"/cgi-bin//reports/x.cgi", "reports"},
		{"//cgi-bin/reports/x.cgi", "reports"},
		{"/cgi-bin/./reports/x.cgi", "reports"},
		{"/cgi-bin/reports/./x.cgi", "reports"},
		{"/cgi-bin/x/../reports/x.cgi", "reports"},
		{"/cgi-bin/reports//", "reports"},
		{"/cgi-bin/reports", "default"},
		{"/cgi-bin/reportsx/y", "default"},
		{"/cgi-bin/reports/../x.cgi", "default"},
		{"/cgi-bin/.reports/x.cgi", "default"},
		{"/app//x", "app"},
		{"/x/../app", "app"},
	} {
		got = ""
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = tc.path
		if err := rt.Serve(httptest.NewRecorder(), r); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: served by %s, want %s", tc.path, got, tc.want)
		}
	}
}
