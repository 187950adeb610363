package channels

import (
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Settings reads one provider's config section against its Spec.Config:
// required fields are checked, defaults applied, and every problem is
// reported naming the field (NewSet prefixes channels.<section>).
type Settings struct {
	fields map[string]ConfigField
	m      map[string]any
	errs   []string
}

func NewSettings(spec Spec, cfg map[string]any, log *slog.Logger) *Settings {
	s := &Settings{fields: map[string]ConfigField{}, m: cfg}
	for _, f := range spec.Config {
		s.fields[f.Name] = f
	}
	for _, f := range spec.Config {
		if f.Required && strings.TrimSpace(s.Raw(f.Name)) == "" {
			s.errs = append(s.errs, fmt.Sprintf("%s is required: %s", f.Name, f.Doc))
		}
	}
	// Unknown keys are reported, not rejected: a section is shared by several
	// channels (and the server reads wecom.callback), so a key this provider
	// does not know may be someone else's.
	var unknown []string
	for k := range cfg {
		if _, ok := s.fields[k]; !ok && k != "provider" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 && log != nil {
		sort.Strings(unknown)
		log.Warn("channel config has keys this provider does not read", "channel", spec.Name, "provider", spec.Provider, "keys", unknown)
	}
	return s
}

// Raw returns the value as text (YAML may give numbers; ${ENV} gives strings).
func (s *Settings) Raw(name string) string {
	switch v := s.m[name].(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

func (s *Settings) Str(name string) string {
	v := strings.TrimSpace(s.Raw(name))
	if v == "" {
		v = s.fields[name].Default
	}
	return v
}

func (s *Settings) Integer(name string) int {
	v := s.Str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("%s: %q is not a whole number", name, v))
	}
	return n
}

func (s *Settings) boolean(name string) bool {
	v := s.Str(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("%s: %q is not true or false", name, v))
	}
	return b
}

// Duration accepts Go durations ("10s", "2m") or a whole number of seconds.
func (s *Settings) Duration(name string) time.Duration {
	v := s.Str(name)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		s.errs = append(s.errs, fmt.Sprintf("%s: %q is not a duration like 10s or 2m", name, v))
	}
	return d
}

// BaseURL checks an http(s) URL and drops a trailing slash.
func (s *Settings) BaseURL(name string) string {
	v := strings.TrimRight(s.Str(name), "/")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.errs = append(s.errs, fmt.Sprintf("%s: %q is not an http(s) URL", name, v))
	}
	return v
}

func (s *Settings) Check(cond bool, format string, args ...any) {
	if !cond {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func (s *Settings) Err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(s.errs, "; "))
}
