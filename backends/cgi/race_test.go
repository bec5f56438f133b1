//go:build race

package cgi

// raceBuild: the test binary, which is also the tests' CGI script, is
// built with the race detector, whose runtime maps large shadow regions
// at start: it cannot start under a memory limit (exit status 66).
const raceBuild = true
