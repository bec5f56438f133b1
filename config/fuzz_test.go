package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/viper"
)

// fuzzFormats are the formats FuzzParse picks from by its format byte.
var fuzzFormats = []string{"yaml", "toml", "json"}

// FuzzParse decodes arbitrary bytes as a configuration file in each
// format. Parse must return an error or a configuration that passes
// Validate again, never panic, and give the same answer for the same
// bytes (no map order leaks into the result).
//
// Seeds: the embedded default and the example files in each of the three
// formats (re-encoded by viper, as a user converting them would), and the
// small files of the table tests.
func FuzzParse(f *testing.F) {
	files := []string{"default.yaml", filepath.Join("..", "examples", "junction.yaml"), filepath.Join("..", "examples", "pools.yaml")}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0))
		for i, format := range fuzzFormats[1:] {
			if enc, ok := reencode(data, format); ok {
				f.Add(enc, uint8(i+1))
			}
		}
	}
	f.Add([]byte(valid), uint8(0))
	f.Add([]byte(valid+"lsteners: []\n"), uint8(0))
	f.Add([]byte("[[listeners]]\nprotocol = \"scgi\"\naddress = \"127.0.0.1:4000\"\nbackend = \"s\"\nread_timeout = \"5s\"\n\n[backends.s]\ntype = \"cgi\"\nscript = \"/srv/app.cgi\"\n"), uint8(1))
	f.Add([]byte(`{"listeners": [{"protocol": "scgi", "address": "127.0.0.1:4000", "backend": "s"}], "backends": {"s": {"type": "cgi", "script": "/srv/${HOME}/app.cgi"}}}`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		name := fuzzFormats[int(format)%len(fuzzFormats)]
		cfg, err := Parse(data, name)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a configuration with its error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("Parse failed without saying why")
			}
		} else if verr := cfg.Validate(); verr != nil {
			t.Fatalf("Parse returned a configuration that fails Validate: %v", verr)
		}
		again, err2 := Parse(data, name)
		if (err == nil) != (err2 == nil) || err == nil && !reflect.DeepEqual(cfg, again) {
			t.Fatalf("two parses of the same bytes differ: %v / %v", err, err2)
		}
	})
}

// reencode writes a YAML file's settings in another format with viper.
func reencode(data []byte, format string) ([]byte, bool) {
	in := viper.NewWithOptions(viper.KeyDelimiter("::"))
	in.SetConfigType("yaml")
	if err := in.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, false
	}
	out := viper.NewWithOptions(viper.KeyDelimiter("::"))
	out.SetConfigType(format)
	if err := out.MergeConfigMap(in.AllSettings()); err != nil {
		return nil, false
	}
	var b bytes.Buffer
	if err := out.WriteConfigTo(&b); err != nil {
		return nil, false
	}
	return b.Bytes(), true
}
