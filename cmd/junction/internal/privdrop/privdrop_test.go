package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		user, group string
		want        *Credential // nil with wantErr "" means nothing to do
		wantErr     string
	}{
		{"", "", nil, ""},
		{"", "nogroup", nil, `group "nogroup" without a user`},
		{"nobody", "", &Credential{User: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}}, ""},
		{"65534", "", &Credential{User: "65534", UID: 65534, GID: 65534, Groups: []int{65534}}, ""},
		{"nobody", "root", &Credential{User: "nobody", Group: "root", UID: 65534, GID: 0, Groups: []int{0, 65534}}, ""},
		{"nobody", "0", &Credential{User: "nobody", Group: "0", UID: 65534, GID: 0, Groups: []int{0, 65534}}, ""},
		{"junction-no-such-user", "", nil, `user "junction-no-such-user"`},
		{"nobody", "junction-no-such-group", nil, `group "junction-no-such-group"`},
	}
	for _, tt := range tests {
		t.Run(tt.user+":"+tt.group, func(t *testing.T) {
			got, err := Lookup(tt.user, tt.group)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil || got == nil {
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if got.User != tt.want.User || got.Group != tt.want.Group || got.UID != tt.want.UID || got.GID != tt.want.GID || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fakeSys records the calls Drop makes on a pretend process.
type fakeSys struct {
	uid, gid int
	groups   []int
	calls    []string
	fail     string // the call that fails
	stuck    bool   // setuid "succeeds" without changing the uid
}

func (f *fakeSys) sys() sys {
	call := func(name string, arg any) error {
		f.calls = append(f.calls, fmt.Sprint(name, " ", arg))
		if f.fail == name {
			return syscall.EPERM
		}
		return nil
	}
	return sys{
		geteuid: func() int { return f.uid }, getuid: func() int { return f.uid },
		getegid: func() int { return f.gid }, getgid: func() int { return f.gid },
		setgroups: func(g []int) error {
			if err := call("setgroups", g); err != nil {
				return err
			}
			f.groups = g
			return nil
		},
		setgid: func(id int) error {
			if err := call("setgid", id); err != nil {
				return err
			}
			f.gid = id
			return nil
		},
		setuid: func(id int) error {
			if err := call("setuid", id); err != nil {
				return err
			}
			if !f.stuck {
				f.uid = id
			}
			return nil
		},
	}
}

func TestDrop(t *testing.T) {
	www := &Credential{User: "www-data", UID: 33, GID: 33, Groups: []int{33, 4}}
	all := []string{"setgroups [33 4]", "setgid 33", "setuid 33"}
	tests := []struct {
		name      string
		c         *Credential
		proc      fakeSys
		wantCalls []string
		wantErr   error // nil: success
		wantIDs   [2]int
	}{
		{"nil does nothing", nil, fakeSys{uid: 0, gid: 0}, nil, nil, [2]int{0, 0}},
		{"root drops in order", www, fakeSys{uid: 0, gid: 0}, all, nil, [2]int{33, 33}},
		{"already that user", www, fakeSys{uid: 33, gid: 33}, nil, nil, [2]int{33, 33}},
		{"not root refuses", www, fakeSys{uid: 1000, gid: 1000}, nil, ErrNotRoot, [2]int{1000, 1000}},
		{"right uid, wrong gid refuses", www, fakeSys{uid: 33, gid: 1000}, nil, ErrNotRoot, [2]int{33, 1000}},
		{"setgroups fails", www, fakeSys{fail: "setgroups"}, all[:1], syscall.EPERM, [2]int{0, 0}},
		{"setgid fails before setuid", www, fakeSys{fail: "setgid"}, all[:2], syscall.EPERM, [2]int{0, 0}},
		{"setuid fails", www, fakeSys{fail: "setuid"}, all, syscall.EPERM, [2]int{0, 33}},
		{"still root after setuid", www, fakeSys{stuck: true}, all, errStill, [2]int{0, 33}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proc
			err := tt.c.drop(p.sys())
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr == errStill && (err == nil || !strings.Contains(err.Error(), "still uid")):
				t.Errorf("error %v, want a verification failure", err)
			case tt.wantErr != nil && tt.wantErr != errStill && !errors.Is(err, tt.wantErr):
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(p.calls, tt.wantCalls) {
				t.Errorf("calls %q, want %q", p.calls, tt.wantCalls)
			}
			if [2]int{p.uid, p.gid} != tt.wantIDs {
				t.Errorf("ids %d/%d, want %v", p.uid, p.gid, tt.wantIDs)
			}
		})
	}
}

// errStill marks the case where the ids did not change.
var errStill = errors.New("still")

const childEnv = "JUNCTION_PRIVDROP_CHILD"

// TestDropProcess drops a real process (a re-executed test binary, so the
// test process stays root) to nobody and checks every thread.
func TestDropProcess(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		dropChild()
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropProcess$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	report := string(out)
	for _, want := range []string{"threads>1", "uids ok", "setuid(0) refused"} {
		if !strings.Contains(report, want) {
			t.Errorf("child report lacks %q:\n%s", want, report)
		}
	}
}

// dropChild runs in the child: it starts threads, drops to nobody and
// prints what every thread's credentials are.
func dropChild() {
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL: "+format+"\n", args...)
		os.Exit(1)
	}
	// Park some goroutines on their own OS threads so the switch must
	// reach more than the calling thread.
	var ready, stop sync.WaitGroup
	stop.Add(1)
	for range 4 {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			stop.Wait()
		}()
	}
	ready.Wait()
	c, err := Lookup("nobody", "nogroup")
	if err != nil {
		fail("lookup: %v", err)
	}
	if err := c.Drop(); err != nil {
		fail("drop: %v", err)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) < 2 {
		fail("threads: %d %v", len(tasks), err)
	}
	fmt.Println("threads>1")
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			fail("%v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 0:
			case f[0] == "Uid:" && !slices.Equal(f[1:], []string{"65534", "65534", "65534", "65534"}),
				f[0] == "Gid:" && !slices.Equal(f[1:], []string{"65534", "65534", "65534", "65534"}),
				f[0] == "Groups:" && !slices.Equal(f[1:], []string{"65534"}):
				fail("%s: %s", st, line)
			}
		}
	}
	fmt.Println("uids ok")
	if err := syscall.Setuid(0); err == nil {
		fail("setuid(0) worked after the drop")
	}
	fmt.Println("setuid(0) refused")
	stop.Done()
}
