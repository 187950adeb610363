package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/huabu/huabu/canvases"
)

// Config is huabu.yaml.
type Config struct {
	Timezone string         `yaml:"timezone"`
	Canvases string         `yaml:"canvases"`
	Temporal TemporalConfig `yaml:"temporal"`
	Store    StoreConfig    `yaml:"store"`
	HTTP     HTTPConfig     `yaml:"http"`
	Profile  ProfileConfig  `yaml:"profile"`
	// Events optionally types event properties: events: {purchase: {amount: number}}.
	Events map[string]map[string]string `yaml:"events"`
	// Tags are auto-tag rules: a tag and the condition over user that sets it.
	Tags     map[string]string         `yaml:"tags"`
	Channels map[string]map[string]any `yaml:"channels"`
	Policy   PolicyConfig              `yaml:"policy"`
	Triggers TriggersConfig            `yaml:"triggers"`

	// File is the path the config was read from ("" for the built-in one);
	// Dir is what relative paths are resolved against.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
	// FS, when set, holds the canvases directory instead of the disk (the
	// built-in example config carries its canvases in the binary).
	FS fs.FS `yaml:"-"`
}

type TemporalConfig struct {
	Address   string `yaml:"address"` // "embedded" or host:port
	Namespace string `yaml:"namespace"`
	TaskQueue string `yaml:"task_queue"`
}

// Embedded reports whether Huabu should start its own Temporal server.
func (t TemporalConfig) Embedded() bool { return t.Address == "" || t.Address == "embedded" }

// TriggersConfig tunes how events start journeys.
type TriggersConfig struct {
	// Window is how long entries of an event-triggered canvas gather before
	// they start one run together (default 200ms).
	Window string `yaml:"window"`
}

// EntryWindow is the parsed Window.
func (t TriggersConfig) EntryWindow() time.Duration {
	d, _ := time.ParseDuration(t.Window)
	return d
}

type StoreConfig struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
}

type HTTPConfig struct {
	Listen    string   `yaml:"listen"`
	WriteKeys []string `yaml:"write_keys"`
	Disabled  bool     `yaml:"disabled"`
	// IngestBacklogMB bounds the accept log: MiB accepted and not yet in the
	// store before the ingestion API answers 503 (default 1024).
	IngestBacklogMB int `yaml:"ingest_backlog_mb"`
}

type ProfileConfig struct {
	Attributes map[string]string      `yaml:"attributes"`
	Traits     map[string]TraitConfig `yaml:"traits"`
	RFM        *RFMConfig             `yaml:"rfm"`
}

// TraitConfig declares a computed trait: one aggregation of an event (or an
// event property) within an optional window.
type TraitConfig struct {
	Count     string `yaml:"count"`      // event
	Sum       string `yaml:"sum"`        // event.property
	Min       string `yaml:"min"`        // event.property
	Max       string `yaml:"max"`        // event.property
	First     string `yaml:"first"`      // event.property
	Last      string `yaml:"last"`       // event.property
	DaysSince string `yaml:"days_since"` // event: whole days since the last one
	Within    string `yaml:"within"`     // window, e.g. 30d; all time when empty
}

// Aggregation returns the trait's function and its event[.property] source.
func (t TraitConfig) Aggregation() (fn, source string, count int) {
	for _, c := range []struct{ fn, src string }{
		{"count", t.Count}, {"sum", t.Sum}, {"min", t.Min}, {"max", t.Max},
		{"first", t.First}, {"last", t.Last}, {"days_since", t.DaysSince},
	} {
		if c.src != "" {
			fn, source = c.fn, c.src
			count++
		}
	}
	return fn, source, count
}

type RFMConfig struct {
	Event  string `yaml:"event"`  // the purchase event
	Amount string `yaml:"amount"` // its amount property
	Window string `yaml:"window"` // e.g. 365d
}

type PolicyConfig struct {
	QuietHours *QuietHoursConfig `yaml:"quiet_hours"`
	Frequency  []FrequencyConfig `yaml:"frequency"`
}

type QuietHoursConfig struct {
	From   string `yaml:"from"`
	To     string `yaml:"to"`
	Action string `yaml:"action"`
}

type FrequencyConfig struct {
	Channel string `yaml:"channel"`
	Max     int    `yaml:"max"`
	Per     string `yaml:"per"`
}

// DefaultFile is where commands look for the config without -c.
const DefaultFile = "huabu.yaml"

// Load reads a config file, expands ${ENV_VAR}s, applies defaults and checks it.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	return Parse(path, dir, src)
}

// Parse reads config text; file names it in errors and dir anchors relative paths.
func Parse(file, dir string, src []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // empty file: all defaults
		return nil, fmt.Errorf("%s: %s", file, yamlMessage(err))
	}
	expandEnv(reflect.ValueOf(&c).Elem())
	c.File, c.Dir = file, dir
	c.applyDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &c, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return yamlLineRE.ReplaceAllString(msg, "line $1: ")
}

func (c *Config) applyDefaults() {
	if c.Timezone == "" {
		c.Timezone = "Asia/Shanghai"
	}
	if c.Canvases == "" {
		c.Canvases = "./canvases"
	}
	if c.Temporal.Address == "" {
		c.Temporal.Address = "embedded"
	}
	if c.Temporal.Namespace == "" {
		c.Temporal.Namespace = "default"
	}
	if c.Temporal.TaskQueue == "" {
		c.Temporal.TaskQueue = "huabu"
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.HTTP.IngestBacklogMB == 0 {
		c.HTTP.IngestBacklogMB = 1024
	}
	// An unset ${HUABU_WRITE_KEY} leaves an empty key; it must not count.
	c.HTTP.WriteKeys = slices.DeleteFunc(c.HTTP.WriteKeys, func(k string) bool { return strings.TrimSpace(k) == "" })
}

func (c *Config) check() error {
	if _, err := canvases.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	if c.HTTP.IngestBacklogMB < 0 {
		return fmt.Errorf("http.ingest_backlog_mb: %d is negative; give the MiB the accept log may hold before the API answers 503", c.HTTP.IngestBacklogMB)
	}
	if !slices.Contains([]string{"sqlite", "postgres"}, c.Store.Driver) {
		return fmt.Errorf("store.driver: %q is not sqlite or postgres", c.Store.Driver)
	}
	for name, t := range c.Profile.Traits {
		fn, src, n := t.Aggregation()
		switch {
		case n == 0:
			return fmt.Errorf("profile.traits.%s: say what it computes: count, sum, min, max, first, last or days_since", name)
		case n > 1:
			return fmt.Errorf("profile.traits.%s: use one of count, sum, min, max, first, last or days_since", name)
		}
		event, prop, hasProp := strings.Cut(src, ".")
		needsProp := fn != "count" && fn != "days_since"
		if event == "" || needsProp && (!hasProp || prop == "") {
			return fmt.Errorf("profile.traits.%s: %s takes event.property, got %q", name, fn, src)
		}
		if !needsProp && hasProp {
			return fmt.Errorf("profile.traits.%s: %s takes an event name, got %q", name, fn, src)
		}
		if t.Within != "" {
			if w, err := canvases.ParseDuration(t.Within); err != nil {
				return fmt.Errorf("profile.traits.%s.within: %v", name, err)
			} else if w <= 0 {
				return fmt.Errorf("profile.traits.%s.within: a window must be longer than 0 (leave within out for all time)", name)
			}
		}
	}
	if r := c.Profile.RFM; r != nil {
		if r.Event == "" || r.Amount == "" {
			return fmt.Errorf("profile.rfm: event and amount are required")
		}
		// amount names a property of the event; "purchase.amount" is
		// taken to mean the same as "amount".
		r.Amount = strings.TrimPrefix(r.Amount, r.Event+".")
		if r.Window == "" {
			r.Window = "365d"
		}
		if w, err := canvases.ParseDuration(r.Window); err != nil {
			return fmt.Errorf("profile.rfm.window: %v", err)
		} else if w <= 0 {
			return fmt.Errorf("profile.rfm.window: the window must be longer than 0")
		}
	}
	for section, fields := range c.Channels {
		if !slices.Contains(ChannelSections, section) {
			return fmt.Errorf("channels.%s: unknown channel section; use %s", section, strings.Join(ChannelSections, ", "))
		}
		if p, ok := fields["provider"]; ok {
			ps, _ := p.(string)
			if allowed := providers[section]; !slices.Contains(allowed, ps) {
				return fmt.Errorf("channels.%s.provider: %q is not one of %s", section, ps, strings.Join(allowed, ", "))
			}
		}
	}
	if c.Triggers.Window != "" {
		if d, err := time.ParseDuration(c.Triggers.Window); err != nil || d <= 0 || d > time.Minute {
			return fmt.Errorf("triggers.window: %q is not a duration between 1ms and 1m (e.g. 200ms)", c.Triggers.Window)
		}
	}
	if q := c.Policy.QuietHours; q != nil {
		if q.Action == "" {
			q.Action = "delay"
		}
		for name, v := range map[string]string{"from": q.From, "to": q.To} {
			if !clockRE.MatchString(v) {
				return fmt.Errorf("policy.quiet_hours.%s: %q is not a time of day like 21:00", name, v)
			}
		}
		if q.Action != "delay" && q.Action != "drop" {
			return fmt.Errorf("policy.quiet_hours.action: %q is not delay or drop", q.Action)
		}
	}
	for i, f := range c.Policy.Frequency {
		if f.Channel != "any" && canvases.Channel(f.Channel) == nil {
			return fmt.Errorf("policy.frequency[%d].channel: %q is not a channel or any", i, f.Channel)
		}
		if f.Max < 1 {
			return fmt.Errorf("policy.frequency[%d].max must be at least 1", i)
		}
		if _, err := canvases.ParseDuration(f.Per); err != nil {
			return fmt.Errorf("policy.frequency[%d].per: %v", i, err)
		}
	}
	if _, err := c.CompilerOptions(); err != nil {
		return err
	}
	if _, err := c.Compiler(); err != nil {
		return err
	}
	return nil
}

// ChannelSections are the keys allowed under channels:.
var ChannelSections = []string{"wecom", "sms", "push", "email", "webhook", "outbox"}

// providers lists the provider names each section accepts; the first is the
// default. "outbox" routes a section to the outbox on purpose.
var providers = map[string][]string{
	"wecom":   {"wecom", "outbox"},
	"sms":     {"aliyun", "tencent", "outbox"},
	"push":    {"jpush", "apns", "fcm", "outbox"},
	"email":   {"smtp", "outbox"},
	"webhook": {"webhook", "outbox"},
	"outbox":  {"outbox"},
}

// Provider returns the provider configured for a channel section, or "".
func (c *Config) Provider(section string) string {
	fields, ok := c.Channels[section]
	if !ok {
		return ""
	}
	if p, ok := fields["provider"].(string); ok && p != "" {
		return p
	}
	return providers[section][0]
}

// ChannelProviders maps each configured channel name to its provider.
func (c *Config) ChannelProviders() map[string]string {
	out := map[string]string{"outbox": "outbox"}
	for _, ch := range canvases.Channels {
		if p := c.Provider(ch.ConfigSection); p != "" {
			out[ch.Name] = p
		}
	}
	return out
}

// Schema is the profile schema canvases are checked against.
func (c *Config) Schema() (canvases.Schema, error) {
	s := canvases.Schema{
		Attributes: map[string]canvases.FieldType{},
		Traits:     map[string]canvases.FieldType{},
		RFM:        c.Profile.RFM != nil,
		Events:     map[string]map[string]canvases.FieldType{},
	}
	for name, t := range c.Profile.Attributes {
		s.Attributes[name] = canvases.FieldType(t)
	}
	for ev, props := range c.Events {
		s.Events[ev] = map[string]canvases.FieldType{}
		for p, t := range props {
			s.Events[ev][p] = canvases.FieldType(t)
		}
	}
	for name, t := range c.Profile.Traits {
		fn, src, _ := t.Aggregation()
		if !traitNameRE.MatchString(name) {
			return s, fmt.Errorf("profile.traits.%s: names must be lowercase letters, digits and _", name)
		}
		switch fn {
		case "count", "days_since":
			s.Traits[name] = canvases.TypeInteger
		case "sum":
			s.Traits[name] = canvases.TypeNumber
		default: // min, max, first, last keep the property's type when declared
			event, prop, _ := strings.Cut(src, ".")
			t := s.Events[event][prop]
			if t == "" {
				t = canvases.TypeAny
				if fn == "min" || fn == "max" {
					t = canvases.TypeNumber
				}
			}
			s.Traits[name] = t
		}
	}
	return s, nil
}

var (
	traitNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	clockRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// CompilerOptions is what the canvas compiler needs from the config.
func (c *Config) CompilerOptions() (canvases.Options, error) {
	s, err := c.Schema()
	if err != nil {
		return canvases.Options{}, err
	}
	return canvases.Options{Schema: s, Timezone: c.Timezone, Channels: c.ChannelProviders()}, nil
}

// Compiler builds the canvas compiler for this config and checks the
// auto-tag rules with it.
func (c *Config) Compiler() (*canvases.Compiler, error) {
	opts, err := c.CompilerOptions()
	if err != nil {
		return nil, err
	}
	comp, err := canvases.NewCompiler(opts)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(c.Tags))
	for n := range c.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, tag := range names {
		if _, err := comp.CompileCondition(c.Tags[tag], ""); err != nil {
			return nil, fmt.Errorf("tags.%s: %v", tag, err)
		}
	}
	return comp, nil
}

// Path resolves a path from the config against its directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${NAME} and ${NAME:-default} from the environment.
func ExpandEnv(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return envRE.ReplaceAllStringFunc(s, func(m string) string {
		g := envRE.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(g[1]); ok && v != "" {
			return v
		}
		return g[3]
	})
}

// expandEnv walks every string in the decoded config.
func expandEnv(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(ExpandEnv(v.String()))
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Interface {
			inner := v.Elem()
			if inner.Kind() == reflect.String && v.CanSet() {
				v.Set(reflect.ValueOf(ExpandEnv(inner.String())))
				return
			}
			if inner.Kind() == reflect.Map || inner.Kind() == reflect.Slice {
				expandEnv(inner)
			}
			return
		}
		expandEnv(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				expandEnv(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			expandEnv(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			cp := reflect.New(e.Type()).Elem()
			cp.Set(e)
			expandEnv(cp)
			v.SetMapIndex(k, cp)
		}
	}
}

// Int reads an integer channel setting that YAML may give as a number or a
// string (after ${ENV} expansion everything can be a string).
func Int(fields map[string]any, key string) (int, bool) {
	switch v := fields[key].(type) {
	case int:
		return v, true
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}
