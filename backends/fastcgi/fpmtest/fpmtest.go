// Package fpmtest writes the configuration of a php-fpm pool (Debian's
// php8.2-fpm) on a unix socket, for the tests and benchmarks that run
// junction against a real php-fpm: the FastCGI backend's tests and the
// integration suite. Each starts and stops the process its own way; the
// configuration is the same.
package fpmtest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Bin is php-fpm as Debian's php8.2-fpm installs it.
const Bin = "/usr/sbin/php-fpm8.2"

// Pool is one php-fpm with one static pool.
type Pool struct {
	// Dir holds fpm.conf, the pid file, the log and the socket.
	Dir string
	// Name names the pool in php-fpm's log.
	Name string
	// Children is pm.max_children (pm = static).
	Children int
	// MaxRequests is pm.max_requests: a worker exits after serving that
	// many requests (0: never).
	MaxRequests int
	// Opcache loads and enables opcache, as a tuned deployment has it.
	Opcache bool
	// Extra is appended to the pool section (listen.backlog, more
	// php_admin_value lines).
	Extra string
}

// Socket is the pool's unix socket.
func (p Pool) Socket() string { return filepath.Join(p.Dir, "fpm.sock") }

// Log is php-fpm's error log.
func (p Pool) Log() string { return filepath.Join(p.Dir, "fpm.log") }

// Config is the path of fpm.conf.
func (p Pool) Config() string { return filepath.Join(p.Dir, "fpm.conf") }

// Write writes fpm.conf and returns the arguments to start php-fpm in the
// foreground with it: -n, so nothing from the machine's php.ini leaks in,
// and -R when running as root (php-fpm refuses root workers without it).
func (p Pool) Write() (args []string, err error) {
	user := ""
	args = []string{"-n", "-F", "-y", p.Config(), "-p", p.Dir}
	if os.Geteuid() == 0 {
		user = "user = root\ngroup = root\n"
		args = append(args, "-R")
	}
	if p.Opcache {
		args = append(args, "-d", "zend_extension=opcache.so", "-d", "opcache.enable=1")
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/fpm.pid
error_log = %[2]s
daemonize = no
[%[3]s]
%[4]slisten = %[5]s
listen.mode = 0600
pm = static
pm.max_children = %[6]d
pm.max_requests = %[8]d
clear_env = yes
security.limit_extensions = .php
php_admin_value[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_flag[expose_php] = off
%[7]s`, p.Dir, p.Log(), p.Name, user, p.Socket(), max(p.Children, 1), p.Extra, p.MaxRequests)
	if err := os.WriteFile(p.Config(), []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("fpmtest: %w", err)
	}
	return args, nil
}
