//go:build !race

package cgi

// raceBuild: see race_test.go.
const raceBuild = false
