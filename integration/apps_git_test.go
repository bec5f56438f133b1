package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const appsGitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// appsGitRun runs git in dir with a clean, deterministic environment (no
// user or system config, fixed identities and dates) and returns its
// trimmed output.
func appsGitRun(home, dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Junction Test", "GIT_AUTHOR_EMAIL=test@example.org", "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z",
		"GIT_COMMITTER_NAME=Junction Test", "GIT_COMMITTER_EMAIL=test@example.org", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// appsGit is appsGitRun failing the test when git fails.
func appsGit(t *testing.T, home, dir string, args ...string) string {
	t.Helper()
	out, err := appsGitRun(home, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// appsGitCommitFiles writes the files (name → content) in work and commits
// them.
func appsGitCommitFiles(t *testing.T, home, work, msg string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(work, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	appsGit(t, home, work, "add", "-A")
	appsGit(t, home, work, "commit", "-q", "-m", msg)
}

// TestAppsGitSmartHTTP runs git-http-backend as junction's CGI script
// (examples/git.yaml) behind nginx scgi_pass and fastcgi_pass
// (examples/nginx-git.conf): a repository with several MB of history and a
// 6 MB blob is pushed through one front server and cloned afresh through
// the other, both ways round, and the clones must have exactly the pushed
// history (git rev-parse, git fsck --full, the blob's hash).
func TestAppsGitSmartHTTP(t *testing.T) {
	t.Parallel()
	needBin(t, appsGitHTTPBackend, "git")
	needBin(t, "/usr/bin/git", "git")
	dir := openTempDir(t)
	home := filepath.Join(dir, "home")
	projects := filepath.Join(dir, "srv-git")
	for _, d := range []string{home, projects} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	appsGit(t, home, projects, "init", "-q", "--bare", "-b", "main", "project.git")
	bare := filepath.Join(projects, "project.git")
	appsGit(t, home, bare, "config", "http.receivepack", "true")

	scgiAddr, fcgiAddr := freeAddr(t), freeAddr(t)
	startJunction(t, appsExample(t, "git.yaml",
		"127.0.0.1:4000", scgiAddr,
		"127.0.0.1:9000", fcgiAddr,
		"/srv/git", projects,
		"    url_prefix: /git", "    allow_root: true\n    url_prefix: /git",
	), scgiAddr, fcgiAddr)
	viaSCGI, viaFCGI := freeAddr(t), freeAddr(t)
	startNginx(t, appsExample(t, "nginx-git.conf",
		"127.0.0.1:8081", viaSCGI,
		"127.0.0.1:8082", viaFCGI,
		"127.0.0.1:4000", scgiAddr,
		"127.0.0.1:9000", fcgiAddr,
		"include scgi_params", "include /etc/nginx/scgi_params",
		"include fastcgi_params", "include /etc/nginx/fastcgi_params",
	))

	// History: five commits of 1 MB each that git cannot compress, then a
	// 6 MB blob.
	work := filepath.Join(dir, "work")
	appsGit(t, home, dir, "init", "-q", "-b", "main", work)
	for i := range 5 {
		appsGitCommitFiles(t, home, work, fmt.Sprintf("history %d", i), map[string][]byte{
			fmt.Sprintf("part-%d.bin", i): appsPseudoRandom(fmt.Sprintf("history %d", i), 1<<20),
			"README":                      []byte(fmt.Sprintf("revision %d\n", i)),
		})
	}
	big := appsPseudoRandom("big blob", 6<<20)
	appsGitCommitFiles(t, home, work, "a big blob", map[string][]byte{"big.bin": big})
	bigID := appsGit(t, home, work, "hash-object", "big.bin")

	check := func(t *testing.T, clone, wantHead, wantCommits string) {
		t.Helper()
		if got := appsGit(t, home, clone, "rev-parse", "HEAD"); got != wantHead {
			t.Errorf("clone HEAD %s, pushed %s", got, wantHead)
		}
		if got := appsGit(t, home, clone, "rev-parse", "HEAD:big.bin"); got != bigID {
			t.Errorf("clone big.bin %s, pushed %s", got, bigID)
		}
		if got := appsGit(t, home, clone, "rev-list", "--count", "HEAD"); got != wantCommits {
			t.Errorf("clone has %s commits, want %s", got, wantCommits)
		}
		appsGit(t, home, clone, "fsck", "--full", "--strict")
		b, err := os.ReadFile(filepath.Join(clone, "big.bin"))
		if err != nil || string(b) != string(big) {
			t.Errorf("checked-out big.bin differs (%d bytes, %v)", len(b), err)
		}
	}

	// Push through SCGI (a chunked POST of ~11 MB that nginx buffers),
	// clone through FastCGI.
	url := func(front string) string { return "http://" + front + "/git/project.git" }
	appsGit(t, home, work, "push", "-q", url(viaSCGI), "main")
	head := appsGit(t, home, work, "rev-parse", "HEAD")
	if got := appsGit(t, home, bare, "rev-parse", "main"); got != head {
		t.Fatalf("server's main is %s after the push, want %s", got, head)
	}
	clone1 := filepath.Join(dir, "clone-fastcgi")
	appsGit(t, home, dir, "clone", "-q", url(viaFCGI), clone1)
	check(t, clone1, head, "6")

	// The other way round: one more commit from the clone pushed through
	// FastCGI, then a fresh clone through SCGI.
	appsGitCommitFiles(t, home, clone1, "from the fastcgi clone", map[string][]byte{
		"more.bin": appsPseudoRandom("more", 2<<20),
	})
	appsGit(t, home, clone1, "push", "-q", "origin", "main")
	head2 := appsGit(t, home, clone1, "rev-parse", "HEAD")
	clone2 := filepath.Join(dir, "clone-scgi")
	appsGit(t, home, dir, "clone", "-q", url(viaSCGI), clone2)
	check(t, clone2, head2, "7")
	if got := appsGit(t, home, clone2, "rev-parse", "HEAD~1"); got != head {
		t.Errorf("second clone's parent commit %s, want %s", got, head)
	}
	// An incremental fetch (negotiation over several POSTs) in the first
	// work tree sees the new commit.
	appsGit(t, home, work, "fetch", "-q", url(viaFCGI), "main")
	if got := appsGit(t, home, work, "rev-parse", "FETCH_HEAD"); got != head2 {
		t.Errorf("fetch got %s, want %s", got, head2)
	}

	// Without nginx in front, git sends a push larger than http.postBuffer
	// (1 MiB) as a chunked POST, and a CGI script needs CONTENT_LENGTH.
	// Junction's own http listener (as its ajp listener behind Apache,
	// which forwards the chunks) spools such a body to a temporary file
	// when the backend has max_body_spool, up to that bound (413 beyond),
	// and answers 411 without it (the default), where a client whose
	// http.postBuffer holds the pack still gets through.
	chunkedPushTest(t, home, dir, projects, clone2, check)
}

// chunkedPushTest pushes the repositories of TestAppsGitSmartHTTP to
// junction's http listener directly: chunked POSTs, spooled by
// max_body_spool or refused.
func chunkedPushTest(t *testing.T, home, dir, projects, clone2 string, check func(*testing.T, string, string, string)) {
	t.Helper()
	bare := filepath.Join(projects, "project.git")
	spoolDir := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	httpAddr, spoolAddr, smallAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	gitBackend := fmt.Sprintf(`type: cgi, allow_root: true, script: %q, url_prefix: /git, set_env: {GIT_PROJECT_ROOT: %q, GIT_HTTP_EXPORT_ALL: "1"}`,
		appsGitHTTPBackend, projects)
	startJunction(t, fmt.Sprintf(`listeners:
  - {protocol: http, address: %q, backend: git}
  - {protocol: http, address: %q, backend: spooled}
  - {protocol: http, address: %q, backend: small}
backends:
  git: {%s}
  spooled: {%s, max_body_spool: 64MiB, spool_dir: %q}
  small: {%s, max_body_spool: 1MiB}
`, httpAddr, spoolAddr, smallAddr, gitBackend, gitBackend, spoolDir, gitBackend), httpAddr, spoolAddr, smallAddr)
	url := func(front string) string { return "http://" + front + "/git/project.git" }

	appsGitCommitFiles(t, home, clone2, "pushed without nginx", map[string][]byte{
		"direct.bin": appsPseudoRandom("direct", 2<<20),
	})
	if out, err := appsGitRun(home, clone2, "push", url(httpAddr), "main"); err == nil || !strings.Contains(out, "411") {
		t.Errorf("chunked push without max_body_spool: %v, want a 411 refusal\n%s", err, out)
	}
	if out, err := appsGitRun(home, clone2, "push", url(smallAddr), "main"); err == nil || !strings.Contains(out, "413") {
		t.Errorf("chunked push of 2 MB with max_body_spool 1MiB: %v, want a 413 refusal\n%s", err, out)
	}
	appsGit(t, home, clone2, "push", "-q", url(spoolAddr), "main")
	head := appsGit(t, home, clone2, "rev-parse", "HEAD")
	if got := appsGit(t, home, bare, "rev-parse", "main"); got != head {
		t.Errorf("server's main is %s after the spooled push, want %s", got, head)
	}

	// The whole repository, ~15 MB of packs, into a new one in one
	// chunked push, then cloned back.
	appsGit(t, home, projects, "init", "-q", "--bare", "-b", "main", "fresh.git")
	appsGit(t, home, filepath.Join(projects, "fresh.git"), "config", "http.receivepack", "true")
	fresh := "http://" + spoolAddr + "/git/fresh.git"
	appsGit(t, home, clone2, "push", "-q", fresh, "main")
	clone3 := filepath.Join(dir, "clone-spooled")
	appsGit(t, home, dir, "clone", "-q", fresh, clone3)
	check(t, clone3, head, "8")
	// The bodies were unlinked as soon as they were created.
	if ents, err := os.ReadDir(spoolDir); err != nil || len(ents) != 0 {
		t.Errorf("spool_dir holds %d entries (%v), want none", len(ents), err)
	}

	// Without the key, a large http.postBuffer sends the length.
	appsGitCommitFiles(t, home, clone2, "pushed with a large postBuffer", map[string][]byte{
		"buffered.bin": appsPseudoRandom("buffered", 2<<20),
	})
	appsGit(t, home, clone2, "-c", "http.postBuffer=67108864", "push", "-q", url(httpAddr), "main")
	if got, want := appsGit(t, home, bare, "rev-parse", "main"), appsGit(t, home, clone2, "rev-parse", "HEAD"); got != want {
		t.Errorf("server's main is %s after the push with a large http.postBuffer, want %s", got, want)
	}
}
