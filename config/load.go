package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

//go:embed default.yaml
var defaultYAML []byte

// Default returns the embedded default configuration: HTTP on
// 127.0.0.1:8080 and SCGI on 127.0.0.1:4000, both serving the scripts in
// examples/cgi-bin (relative to the working directory) under /cgi-bin/.
func Default() *Config {
	cfg, err := Parse(defaultYAML, "yaml")
	if err != nil {
		// default.yaml is part of the binary and covered by tests.
		panic("config: embedded default is invalid: " + err.Error())
	}
	return cfg
}

// Load reads, decodes, completes and validates the file at path. The format
// follows the extension (.toml, .json; anything else is YAML). Relative
// paths in the file resolve against the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parse(data, formatOf(path), filepath.Dir(abs))
	if err != nil {
		return nil, prefixEach(path, err)
	}
	return cfg, nil
}

// prefixEach puts the file name in front of every problem in err, keeping
// them separate for errors.Join readers.
func prefixEach(prefix string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s: %w", prefix, e)
	}
	return errors.Join(out...)
}

// Parse decodes, completes and validates data in the given format ("yaml",
// "toml" or "json"). Relative paths resolve against the working directory.
func Parse(data []byte, format string) (*Config, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, format, wd)
}

func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		return "toml"
	case ".json":
		return "json"
	default:
		return "yaml"
	}
}

func parse(data []byte, format, base string) (*Config, error) {
	cfg, err := decode(data, format)
	if err != nil {
		return nil, err
	}
	cfg.Version = version(data)
	cfg.setDefaults()
	cfg.resolvePaths(base)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decode is phase one: expand the environment, then decode exactly.
func decode(data []byte, format string) (*Config, error) {
	switch format {
	case "yaml", "yml", "toml", "json":
	default:
		return nil, fmt.Errorf("config: unknown format %q (want yaml, toml or json)", format)
	}
	// "::" as the key delimiter keeps backend names with dots in one piece.
	parsed := viper.NewWithOptions(viper.KeyDelimiter("::"))
	parsed.SetConfigType(format)
	if err := parsed.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// The environment is expanded inside each string value after parsing,
	// so a value holding '#', a quote or a newline stays that value and
	// cannot rewrite the file around it.
	var errs []error
	settings := expandValues(parsed.AllSettings(), "", os.LookupEnv, &errs).(map[string]any)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	if err := v.MergeConfigMap(settings); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg Config
	if errs := unknownKeys(settings, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	hooks := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		fileModeHook,
		durationHook,
		sizeHook,
		instanceHook,
		commandHook,
		connsHook,
	))
	if err := v.UnmarshalExact(&cfg, hooks); err != nil {
		return nil, errors.Join(keyedErrors(err)...)
	}
	return &cfg, nil
}

// keyedErrors flattens the decoder's error tree into one error per key,
// written "key: problem" like Validate's.
func keyedErrors(err error) []error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) && err == error(de) {
		return []error{fmt.Errorf("%s: %w", keyPath(de.Name()), de.Unwrap())}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var errs []error
		for _, e := range u.Unwrap() {
			errs = append(errs, keyedErrors(e)...)
		}
		return errs
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return keyedErrors(inner)
		}
	}
	return []error{fmt.Errorf("config: %w", err)}
}

// keyPath rewrites the decoder's "backends[scripts].timeout" as
// "backends.scripts.timeout", keeping list indexes like "listeners[1]".
func keyPath(name string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(name, '[')
		end := strings.IndexByte(name[open+1:], ']')
		if open < 0 || end < 0 {
			b.WriteString(name)
			return b.String()
		}
		key := name[open+1 : open+1+end]
		b.WriteString(name[:open])
		if _, err := strconv.Atoi(key); err == nil {
			b.WriteString("[" + key + "]")
		} else {
			b.WriteString("." + key)
		}
		name = name[open+1+end+1:]
	}
}

// unknownKeys reports every key in raw that t has no field for, with its
// full key path, so that all typos show up at once.
func unknownKeys(raw any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return nil // a type error; UnmarshalExact reports it
		}
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			if tag := f.Tag.Get("mapstructure"); tag != "" {
				fields[tag] = f.Type
			}
		}
		for _, k := range sortedKeys(m) {
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key", join(path, k)))
				continue
			}
			errs = append(errs, unknownKeys(m[k], ft, join(path, k))...)
		}
	case reflect.Slice:
		if s, ok := raw.([]any); ok {
			for i, e := range s {
				errs = append(errs, unknownKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	case reflect.Map:
		if m, ok := raw.(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				errs = append(errs, unknownKeys(m[k], t.Elem(), join(path, k))...)
			}
		}
	}
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// durationHook decodes Go duration strings ("30s", "2m", "500ms"), naming
// the bad value when one does not parse.
// A bare number is refused, except 0 and -1 (TimeoutOff, which Validate
// accepts for write_timeout only): "timeout: 30" would otherwise mean 30
// nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		if data.(string) == "-1" {
			return TimeoutOff, nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		if f := reflect.ValueOf(data); f.CanInt() && f.Int() == -1 || f.CanFloat() && f.Float() == -1 {
			return TimeoutOff, nil
		}
		return nil, fmt.Errorf("%v has no unit; write it like %vs or %vms", data, data, data)
	default:
		return data, nil
	}
	d, err := time.ParseDuration(data.(string))
	if err != nil {
		return nil, fmt.Errorf("%q is not a duration like 30s, 500ms or 2m", data)
	}
	return d, nil
}

// fileModeHook decodes FileMode from an octal string ("0660") or a number
// (an unquoted YAML 0660 or TOML 0o660 arrives as the number 432).
func fileModeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[FileMode]() {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		if d == "" {
			return FileMode(0), nil
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(d, "0o"), 8, 32)
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("socket mode %q is not an octal permission like \"0660\"", d)
		}
		return FileMode(n), nil
	case int, int64, uint64, float64:
		n, err := strconv.ParseUint(fmt.Sprint(d), 10, 32)
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("socket mode %v is not a permission; quote it in octal, like \"0660\"", d)
		}
		return FileMode(n), nil
	}
	return data, nil
}

// expandValues returns node with $NAME, ${NAME} and ${NAME:-fallback}
// replaced in every string value (never in keys) by values from lookup.
// "$$" is a literal "$". Each undefined variable is reported once per key,
// naming the key.
func expandValues(node any, key string, lookup func(string) (string, bool), errs *[]error) any {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			n[k] = expandValues(v, joinKey(key, k), lookup, errs)
		}
		return n
	case []any:
		for i, v := range n {
			n[i] = expandValues(v, fmt.Sprintf("%s[%d]", key, i), lookup, errs)
		}
		return n
	case string:
		out, err := expandEnv(n, lookup)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", key, err))
		}
		return out
	}
	return node
}

func joinKey(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// expandEnv replaces $NAME, ${NAME} and ${NAME:-fallback} in one value.
func expandEnv(value string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(value, "$") {
		return value, nil
	}
	var missing []error
	out := os.Expand(value, func(name string) string {
		if name == "$" {
			return "$"
		}
		if n, fallback, ok := strings.Cut(name, ":-"); ok {
			if v, ok := lookup(n); ok && v != "" {
				return v
			}
			return fallback
		}
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, fmt.Errorf("environment variable %s is not set (write $$ for a literal $)", name))
		}
		return v
	})
	return out, errors.Join(missing...)
}

// resolvePaths makes relative filesystem paths absolute against base.
func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if p, ok := strings.CutPrefix(l.Address, "unix:"); ok && p != "" && !strings.HasPrefix(p, "@") {
			l.Address = "unix:" + abs(p)
		}
	}
	c.Log.AccessFile = abs(c.Log.AccessFile)
	for _, r := range c.Routes {
		if r.Authorizer != nil {
			r.Authorizer.resolvePaths(abs)
		}
	}
	if p, ok := strings.CutPrefix(c.Metrics.Address, "unix:"); ok && p != "" && !strings.HasPrefix(p, "@") {
		c.Metrics.Address = "unix:" + abs(p)
	}
	for _, b := range c.Backends {
		if b == nil {
			continue
		}
		if b.Type == BackendCGI {
			b.Root = abs(b.Root)
			b.Script = abs(b.Script)
			b.SpoolDir = abs(b.SpoolDir)
		}
		b.resolvePoolPaths(abs)
	}
}

// String renders the mode in octal.
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// Perm returns the mode as an fs.FileMode.
func (m FileMode) Perm() fs.FileMode { return fs.FileMode(m) }
