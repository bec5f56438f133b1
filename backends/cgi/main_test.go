package cgi

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test binary re-executed as a CGI script.
const childEnv = "JUNCTION_CGI_TEST_CHILD"

var (
	testRoot    string // scripts: env.cgi, nph-raw.cgi, sub/deep.cgi, plain.txt, links
	testOutside string // outside/evil.cgi
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(child())
	}
	dir, err := os.MkdirTemp("", "junction-cgi-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := 2
	if err := setupRoot(dir); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// setupRoot lays out the script tree with hard links (or copies) of the
// test binary.
func setupRoot(dir string) error {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	testRoot, testOutside = filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for _, d := range []string{testRoot, testOutside, testRoot + "/sub/dir"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, name := range []string{"root/env.cgi", "root/nph-raw.cgi", "root/sub/deep.cgi", "outside/evil.cgi"} {
		if err := install(exe, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(testRoot+"/plain.txt", []byte("x"), 0o644); err != nil {
		return err
	}
	links := [][2]string{
		{"env.cgi", "root/link-in.cgi"},
		{"../outside/evil.cgi", "root/link-out.cgi"},
		{"../outside", "root/linkdir-out"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			return err
		}
	}
	return nil
}

func install(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// child behaves as a CGI script chosen by the X-Mode request header.
func child() int {
	out := os.Stdout
	head := "Content-Type: text/plain\r\n\r\n"
	switch os.Getenv("HTTP_X_MODE") {
	case "", "env":
		env := os.Environ()
		slices.Sort(env)
		wd, _ := os.Getwd()
		fmt.Fprint(out, head)
		for _, kv := range env {
			fmt.Fprintln(out, kv)
		}
		fmt.Fprintf(out, "ARGC=%d\nCWD=%s\nPID=%d\nPGID=%d\n", len(os.Args), wd, os.Getpid(), syscall.Getpgrp())
	case "sha":
		sum := sha256.New()
		n, err := io.Copy(sum, os.Stdin)
		if err != nil {
			return 1
		}
		fmt.Fprintf(out, "%s%x %d", head, sum.Sum(nil), n)
	case "early":
		// Output larger than a pipe buffer before reading any input.
		fmt.Fprint(out, head)
		fmt.Fprint(out, strings.Repeat("x", 256<<10)+"\n")
		sum := sha256.New()
		n, _ := io.Copy(sum, os.Stdin)
		fmt.Fprintf(out, "%x %d", sum.Sum(nil), n)
	case "nostatus":
		fmt.Fprint(out, "Content-type: text/html\n\n<html>stats</html>")
	case "sleep":
		writePids(os.Getpid())
		time.Sleep(time.Hour)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		writePids(os.Getpid())
		time.Sleep(time.Hour)
	case "headsleep":
		fmt.Fprint(out, head+"partial")
		writePids(os.Getpid())
		time.Sleep(time.Hour)
	case "grandchild", "escape":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HTTP_X_MODE=sleep", "HTTP_X_PIDFILE=")
		cmd.Stdout = out
		if os.Getenv("HTTP_X_MODE") == "escape" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := cmd.Start(); err != nil {
			return 1
		}
		writePids(os.Getpid(), cmd.Process.Pid)
		fmt.Fprint(out, head+"done")
	case "stderr":
		fmt.Fprintln(os.Stderr, "first problem")
		fmt.Fprintln(os.Stderr, strings.Repeat("L", 5000))
		fmt.Fprint(os.Stderr, "last words")
		fmt.Fprint(out, head+"ok")
	case "stderr-flood":
		// More stderr than a pipe holds before any stdout: only a
		// reader running while the script does lets it finish.
		line := strings.Repeat("e", 99) + "\n"
		for range (256 << 10) / len(line) {
			fmt.Fprint(os.Stderr, line)
		}
		fmt.Fprint(out, head+"flooded")
	case "stderr-escape":
		// A process that left the group keeps stderr (only) open and
		// writes to it after the script exited.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HTTP_X_MODE=late-stderr")
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return 1
		}
		writePids(os.Getpid(), cmd.Process.Pid)
		fmt.Fprint(out, head+"done")
	case "late-stderr":
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "late words")
		time.Sleep(time.Hour)
	case "exit3":
		return 3
	case "redirect":
		fmt.Fprint(out, "Location: /other?x=1\n\n")
	case "redirect-status":
		fmt.Fprint(out, "Status: 302 Found\nLocation: /other\n\n")
	case "nph":
		fmt.Fprint(out, "HTTP/1.1 299 Custom\r\nX-Nph: 1\r\n\r\nraw body")
	case "huge":
		fmt.Fprint(out, "X-A: ")
		chunk := []byte(strings.Repeat("a", 4096))
		for {
			if _, err := out.Write(chunk); err != nil {
				return 0
			}
		}
	case "malformed":
		fmt.Fprint(out, "this is not a header\n\n")
	case "stream":
		fmt.Fprint(out, head+"one\n")
		gate := os.Getenv("HTTP_X_GATE")
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(gate); err == nil {
				fmt.Fprint(out, "two\n")
				return 0
			}
		}
		fmt.Fprint(out, "gate never opened\n")
	case "stop-pid":
		return stopPid()
	default:
		if code, ok := limitsChild(os.Getenv("HTTP_X_MODE")); ok {
			return code
		}
		fmt.Fprint(out, "Status: 500\n\nunknown mode")
	}
	return 0
}

// writePids records pids for the test (HTTP_X_PIDFILE).
func writePids(pids ...int) {
	f := os.Getenv("HTTP_X_PIDFILE")
	if f == "" {
		return
	}
	s := fmt.Sprint(pids)
	tmp := f + ".tmp"
	if os.WriteFile(tmp, []byte(s), 0o644) == nil {
		_ = os.Rename(tmp, f)
	}
}
