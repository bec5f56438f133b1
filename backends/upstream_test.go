package backends

import (
	"context"
	"testing"
	"time"
)

type fakeUpstream struct {
	backend, instance, user string
	took                    time.Duration
}

func (f *fakeUpstream) SetBackend(name string)          { f.backend = name }
func (f *fakeUpstream) SetInstance(name string)         { f.instance = name }
func (f *fakeUpstream) SetUpstreamTime(d time.Duration) { f.took = d }
func (f *fakeUpstream) SetUser(name string)             { f.user = name }

func TestUpstreamContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, *fakeUpstream)
	}{
		{"none", func() (context.Context, *fakeUpstream) { return context.Background(), nil }},
		{"set", func() (context.Context, *fakeUpstream) {
			f := &fakeUpstream{}
			return NewUpstreamContext(context.Background(), f), f
		}},
		{"typed nil", func() (context.Context, *fakeUpstream) {
			return NewUpstreamContext(context.Background(), nil), nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, f := tt.ctx()
			u := UpstreamFromContext(ctx)
			if u == nil {
				t.Fatal("UpstreamFromContext returned nil")
			}
			// Must not panic without a recorder.
			u.SetBackend("cgi")
			u.SetInstance("127.0.0.1:9000")
			u.SetUpstreamTime(3 * time.Millisecond)
			u.SetUser("alice")
			if f == nil {
				return
			}
			if f.backend != "cgi" || f.instance != "127.0.0.1:9000" || f.took != 3*time.Millisecond || f.user != "alice" {
				t.Errorf("recorded %+v", *f)
			}
		})
	}
}
