// Command junction is a gateway between web servers and CGI scripts: nginx,
// Apache httpd or lighttpd speak SCGI, FastCGI or AJP13 to it, and it runs
// the scripts.
//
// Usage:
//
//	junction serve [-c FILE]   serve every listener (no -c: built-in config)
//	junction inetd -c FILE     serve one connection on stdin/stdout, then exit
//	junction reload -pid-file F  make the running junction re-read its file
//	junction check -c FILE     validate FILE; print every problem
//	junction import KIND FILE...  turn nginx/apache/lighttpd/uwsgi/modjk configuration into junction's
//	junction version           print version information
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/junction-gw/junction/cmd/junction/app"
	"github.com/junction-gw/junction/cmd/junction/internal/sockets"
	"github.com/junction-gw/junction/config"

	// The CGI limit helper: a junction process started with the helper's
	// argv[0] (only junction's own CGI runner starts one) sets a script's
	// resource limits and executes the script from this package's init,
	// before the rest of the binary initializes. backends/cgi imports it
	// too; the import here says that serve and inetd alike are helpers.
	_ "github.com/junction-gw/junction/internal/limitexec"
)

// Set with -ldflags "-X main.version=... -X main.commit=..." (make build).
var (
	version = ""
	commit  = ""
)

const usage = `usage:
  junction serve [-c FILE] [-pid-file F]
                             serve every listener (without -c: the built-in configuration);
                             SIGHUP re-reads FILE
  junction reload -pid-file F
                             send SIGHUP to the junction whose pid is in F (same as kill -HUP)
  junction inetd -c FILE     serve one connection on stdin/stdout with the first listener, then exit
  junction check -c FILE     check FILE and print every problem
  junction import [--user NAME] [--listen ADDR] KIND FILE...
                             print a junction configuration made from the configuration of
                             KIND (nginx, apache, lighttpd, uwsgi, modjk); what did not map
                             and the front-server snippet go to standard error
  junction version           print the version
`

// defaultGCPercent is the collector's GOGC unless the environment sets
// one. junction's live heap is a few MiB, so at the runtime's default of
// 100 a busy proxy collects tens of times a second, and each cycle wakes
// both processors. Measured under Apache mod_proxy_ajp load, 150 cut
// junction's CPU per request by 15 % (62 -> 53 µs); 200 saved as much but
// raised the pool benchmark's peak RSS from ~25 to 29 MiB. A memory limit
// instead would make a gateway with many connections (a larger live heap)
// collect without pause, so there is none.
const defaultGCPercent = 150

// setGCPercent applies defaultGCPercent unless GOGC is set.
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	// What junction was started with stays junction's: scripts and
	// spawned instances get only the descriptors they are given.
	sockets.CloseOnExecInherited()
	var code int
	switch cmd {
	case "serve":
		setGCPercent()
		code = serve(args)
	case "inetd":
		code = inetd(args)
	case "check":
		code = check(args)
	case "reload":
		code = reload(args)
	case "import":
		code = runImport(args)
	case "version", "-version", "--version":
		printVersion(os.Stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprintf(os.Stderr, "junction: unknown command %q\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

// parseFlags parses the -c flag of a command.
func parseFlags(name string, args []string, required bool) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("c", "", "configuration `FILE` (YAML; .toml and .json by extension)")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(os.Stderr, "junction %s: unexpected argument %q\n%s", name, fs.Arg(0), usage)
		return "", false
	case required && *path == "":
		fmt.Fprintf(os.Stderr, "junction %s: -c FILE is required\n%s", name, usage)
		return "", false
	}
	return *path, true
}

// load reads the configuration at path (the built-in one for "") and
// checks what depends on the user junction runs as: at euid 0, scripts may
// run as root only where the file says so (allow_root). Warnings (those
// and what is unsafe in the file itself, such as an scgi listener open to
// every host) go to warn as "warning: KEY: ..." lines.
func load(path string, warn io.Writer) (*config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	warnings, err := cfg.CheckIdentity(os.Geteuid())
	for _, w := range append(cfg.Warnings(), warnings...) {
		fmt.Fprintln(warn, "warning: "+w)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("c", "", "configuration `FILE` (YAML; .toml and .json by extension)")
	pidFile := fs.String("pid-file", "", "write the process id to `F` (for junction reload)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "junction serve: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 2
	}
	cfg, err := load(*path, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "junction: %v\n", err)
		return 1
	}
	log := app.NewLogger(cfg.Log, os.Stderr)
	a, err := app.NewWithOptions(cfg, log, app.Options{Version: versionString()})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Error("cannot write pid file", "err", err)
			return 1
		}
		defer os.Remove(*pidFile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, a second one stops junction at once.
		<-ctx.Done()
		stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, hup, *path, a, log)
	if err := a.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

// reloadOnHUP re-reads the configuration at every SIGHUP. A file with
// problems is logged in one line, every problem in it, and the running
// configuration stays.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, path string, a *app.App, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		log.Info("reloading", "file", path)
		cfg, err := load(path, os.Stderr)
		if err == nil {
			err = a.Reload(cfg)
		}
		if err != nil {
			var msgs []string
			for _, e := range flatten(err) {
				msgs = append(msgs, e.Error())
			}
			log.Error("reload failed; still serving the previous configuration",
				"config_version", a.ConfigVersion(), "err", strings.Join(msgs, "; "))
		}
	}
}

// reload signals a running junction serve to re-read its configuration.
func reload(args []string) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	pidFile := fs.String("pid-file", "", "the pid file junction serve -pid-file wrote")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *pidFile == "" {
		fmt.Fprintf(os.Stderr, "junction reload: -pid-file F is required (or send SIGHUP yourself: kill -HUP PID)\n%s", usage)
		return 2
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "junction reload: %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(os.Stderr, "junction reload: %s holds no process id\n", *pidFile)
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(os.Stderr, "junction reload: signalling %d: %v\n", pid, err)
		return 1
	}
	return 0
}

func inetd(args []string) int {
	path, ok := parseFlags("inetd", args, true)
	if !ok {
		return 2
	}
	// Classic inetd hands the connection over as stderr too: then logs go
	// to syslog, never into the response.
	stderrIsConn := sockets.SameFile(os.Stdin, os.Stderr)
	var logOut io.Writer = os.Stderr
	if stderrIsConn {
		logOut = syslogWriter()
	}
	cfg, err := load(path, logOut)
	if err != nil {
		fmt.Fprintf(logOut, "junction: %v\n", err)
		return 1
	}
	log := app.NewLogger(cfg.Log, logOut)
	// Standard output is the connection: access log lines go where the
	// other logs go unless log.access_file names a file.
	a, err := app.NewWithOptions(cfg, log, app.Options{Version: versionString(), AccessLog: logOut})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	conn, err := sockets.StdioConn(os.Stdin, os.Stdout)
	if err != nil {
		log.Error("no connection on stdin", "err", err)
		return 1
	}
	std := []*os.File{os.Stdin, os.Stdout}
	if stderrIsConn {
		std = append(std, os.Stderr)
	}
	if err := sockets.Detach(std...); err != nil {
		log.Warn("cannot detach standard descriptors", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The connection was served even if the peer misbehaved; the server
	// logged why. Exit 0 so inetd and systemd do not record a failure.
	if err := a.ServeInetd(ctx, conn); err != nil {
		log.Debug("connection ended", "err", err)
	}
	return 0
}

// syslogWriter returns a writer to the local syslog daemon, or a discarding
// writer when there is none.
func syslogWriter() io.Writer {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "junction")
	if err != nil {
		return io.Discard
	}
	return w
}

func check(args []string) int {
	path, ok := parseFlags("check", args, true)
	if !ok {
		return 2
	}
	cfg, err := load(path, os.Stdout)
	if err == nil {
		// Building the backends catches what the file alone cannot show,
		// like a script directory that does not exist. Nothing is bound.
		if _, err = app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintln(os.Stdout, e)
		}
		return 1
	}
	fmt.Fprintln(os.Stdout, "ok")
	return 0
}

// flatten splits joined errors into one error per problem.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "junction %s\n", versionString())
}

// versionString is "VERSION (commit C, GOVERSION, OS/ARCH)".
func versionString() string {
	v, c := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
