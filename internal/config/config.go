package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	_ "github.com/huabu/huabu/internal/channels/wecom" // registers the wecom provider, so its name is accepted
)

// Config is huabu.yaml.
type Config struct {
	Timezone string         `yaml:"timezone" format:"timezone"`
	Canvases string         `yaml:"canvases"`
	Temporal TemporalConfig `yaml:"temporal"`
	Store    StoreConfig    `yaml:"store"`
	HTTP     HTTPConfig     `yaml:"http"`
	Profile  ProfileConfig  `yaml:"profile"`
	// Events optionally types event properties: events: {purchase: {amount: number}}.
	Events map[string]map[string]string `yaml:"events"`
	// Tags are auto-tag rules: a tag and the condition over user that sets it.
	Tags     map[string]string         `yaml:"tags" kind:"expr"`
	Channels map[string]map[string]any `yaml:"channels"`
	Policy   PolicyConfig              `yaml:"policy"`
	Triggers TriggersConfig            `yaml:"triggers"`
	Run      RunConfig                 `yaml:"run"`
	Auth     AuthConfig                `yaml:"auth"`
	// TestUsers receive `huabu test-send` when it names no --to.
	TestUsers []string `yaml:"test_users" doc:"user ids that huabu test-send sends to when it names no --to"`

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

// RunConfig guards `huabu run`.
type RunConfig struct {
	// ConfirmAbove: `huabu run` asks for confirmation (or --yes) before a
	// run that would enter more users than this; 0 never asks. Default 1000.
	ConfirmAbove *int `yaml:"confirm_above"`
}

// ConfirmAboveOrDefault is ConfirmAbove with its default.
func (r RunConfig) ConfirmAboveOrDefault() int {
	if r.ConfirmAbove == nil {
		return 1000
	}
	return *r.ConfirmAbove
}

// TriggersConfig tunes how events start journeys.
type TriggersConfig struct {
	// Window is how long entries of an event-triggered canvas gather before
	// they start one run together (default 200ms).
	Window string `yaml:"window"`
	// BackPressure closes a canvas's window once the run of its previous
	// window has begun, after an eighth of Window at least (ADR 035);
	// Window is then the longest a window gathers.
	BackPressure bool `yaml:"back_pressure"`
}

// EntryWindow is the parsed Window.
func (t TriggersConfig) EntryWindow() time.Duration {
	d, _ := time.ParseDuration(t.Window)
	return d
}

type StoreConfig struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	// DSN: sqlite, the database file (default DATA/huabu.db); postgres, a
	// postgres:// URL or key=value string (${VAR} for the password; it is
	// masked wherever Huabu prints the DSN).
	DSN string `yaml:"dsn"`
}

// AuthConfig is who may use the admin API.
type AuthConfig struct {
	Tokens []TokenConfig `yaml:"tokens"`
}

// TokenConfig is one named bearer token with a role (viewer, operator,
// approver, admin). Empty tokens are refused when the server starts, not
// here: a CLI reading the same file need not have the server's secrets.
type TokenConfig struct {
	Name  string `yaml:"name" required:"true"`
	Role  string `yaml:"role" required:"true" enum:"viewer|operator|approver|admin"`
	Token string `yaml:"token"`
}

type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// AdminListen, when set, serves the admin API (and /metrics) on its own
	// address; Listen then carries only /v1, /wecom/callback and /healthz.
	AdminListen string   `yaml:"admin_listen"`
	WriteKeys   []string `yaml:"write_keys"`
	Disabled    bool     `yaml:"disabled"`
	// IngestBacklogMB bounds the accept log: MiB accepted and not yet in the
	// store before the ingestion API answers 503 (default 1024).
	IngestBacklogMB int `yaml:"ingest_backlog_mb"`
	// CORSOrigins are the web origins whose pages may send events to /v1
	// (analytics.js); "*" for any.
	CORSOrigins []string `yaml:"cors_origins"`
	// RateLimit limits /v1 requests per write key.
	RateLimit *RateLimitConfig `yaml:"rate_limit"`
}

// RateLimitConfig is a token bucket per write key.
type RateLimitConfig struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
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
	Approval   *ApprovalConfig   `yaml:"approval"`
	// RequireConsent names a profile attribute or trait that must be true
	// for a user to get marketing messages.
	RequireConsent string `yaml:"require_consent"`
	// ResumeGrace: messages held by a pause longer than this are not sent
	// when the canvas resumes (reason expired); default 1h.
	ResumeGrace string `yaml:"resume_grace" kind:"duration"`
}

// ResumeGraceDuration is ResumeGrace parsed (0: the default).
func (p PolicyConfig) ResumeGraceDuration() time.Duration {
	d, _ := canvases.ParseDuration(p.ResumeGrace)
	return d.Std()
}

// ApprovalConfig keeps deployed canvas versions as drafts until an
// approver who is not their author approves that exact plan hash.
type ApprovalConfig struct {
	// Required turns approval on for every version.
	Required bool `yaml:"required"`
	// Channels, when set, narrows it (and turns it on) to versions that
	// send on one of these channels (fallbacks count).
	Channels []string `yaml:"channels" format:"channel"`
	// Above, when set, narrows it (and turns it on) to versions whose runs
	// would reach more than this many users: the audience estimate (for
	// event triggers, who would have entered over the last 7 days), or the
	// users a manual run names.
	Above int64 `yaml:"above"`
}

// On reports whether any version may need approval.
func (a *ApprovalConfig) On() bool {
	return a != nil && (a.Required || len(a.Channels) > 0 || a.Above > 0)
}

type QuietHoursConfig struct {
	From   string `yaml:"from" format:"clock"`
	To     string `yaml:"to" format:"clock"`
	Action string `yaml:"action"`
}

type FrequencyConfig struct {
	Channel string `yaml:"channel" format:"channel-or-any"`
	Max     int    `yaml:"max"`
	Per     string `yaml:"per" kind:"duration"`
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

// Parse reads config text; file names it in errors and dir anchors relative
// paths. Every problem is reported at once, as canvas problems are
// (FILE:LINE:COL: error: path: message): the error is canvases.Problems.
func Parse(file, dir string, src []byte) (*Config, error) {
	doc := canvases.CheckDocument(file, src, Spec, ExpandEnv)
	var c Config
	if doc.Root != nil {
		// The walk reported every value of the wrong shape; decoding keeps
		// what fits, and the checks below skip what the walk rejected.
		_ = doc.Root.Node.Decode(&c)
	}
	c.File, c.Dir = file, dir
	c.applyDefaults()
	c.check(doc)
	if doc.HasErrors() {
		return nil, doc.Problems()
	}
	return &c, nil
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
	if r := c.Profile.RFM; r != nil {
		// amount names a property of the event; "purchase.amount" is
		// taken to mean the same as "amount".
		r.Amount = strings.TrimPrefix(r.Amount, r.Event+".")
		if r.Window == "" {
			r.Window = "365d"
		}
	}
	if q := c.Policy.QuietHours; q != nil && q.Action == "" {
		q.Action = "delay"
	}
}

// check reports what the shape check cannot see, each problem at the value
// it is about. Values the walk already rejected are not checked again.
func (c *Config) check(doc *canvases.Document) {
	fail := func(path, format string, args ...any) {
		if !doc.Reported(path) {
			doc.Errorf(path, format, args...)
		}
	}
	if c.HTTP.IngestBacklogMB < 0 {
		fail("http.ingest_backlog_mb", "%d is negative; give the MiB the accept log may hold before the API answers 503", c.HTTP.IngestBacklogMB)
	}
	if rl := c.HTTP.RateLimit; rl != nil && (rl.RequestsPerSecond <= 0 || rl.Burst < 0) {
		fail("http.rate_limit", "requests_per_second must be above 0 (and burst 0 or more); leave rate_limit out for no limit")
	}
	for i, o := range c.HTTP.CORSOrigins {
		if o != "*" && (!strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.Count(o, "/") != 2) {
			fail(fmt.Sprintf("http.cors_origins[%d]", i), "%q is not an origin like https://shop.example.com (scheme and host, no path) or *", o)
		}
	}
	if t := c.Policy.RequireConsent; t != "" {
		if _, attr := c.Profile.Attributes[t]; !attr {
			if _, trait := c.Profile.Traits[t]; !trait {
				fail("policy.require_consent", "%q is not in profile.attributes or profile.traits; declare it (e.g. %s: bool)", t, t)
			}
		}
	}
	if c.HTTP.AdminListen != "" && c.HTTP.AdminListen == c.HTTP.Listen && !strings.HasSuffix(c.HTTP.Listen, ":0") {
		fail("http.admin_listen", "%q is http.listen too; give the admin API its own address, or leave admin_listen out", c.HTTP.AdminListen)
	}
	if !slices.Contains([]string{"sqlite", "postgres"}, c.Store.Driver) {
		fail("store.driver", "%q is not sqlite or postgres", c.Store.Driver)
	}
	if c.Store.Driver == "postgres" && c.Store.DSN == "" {
		fail("store.dsn", "driver postgres needs a dsn, e.g. postgres://huabu:${HUABU_PG_PASSWORD}@127.0.0.1:5432/huabu?sslmode=disable")
	}
	for _, name := range sortedKeys(c.Profile.Traits) {
		t, path := c.Profile.Traits[name], "profile.traits."+name
		if !traitNameRE.MatchString(name) {
			fail(path, "names must be lowercase letters, digits and _")
		}
		fn, src, n := t.Aggregation()
		switch {
		case n == 0:
			fail(path, "say what it computes: count, sum, min, max, first, last or days_since")
			continue
		case n > 1:
			fail(path, "use one of count, sum, min, max, first, last or days_since")
			continue
		}
		event, prop, hasProp := strings.Cut(src, ".")
		needsProp := fn != "count" && fn != "days_since"
		if event == "" || needsProp && (!hasProp || prop == "") {
			fail(path+"."+fn, "%s takes event.property, got %q", fn, src)
		}
		if !needsProp && hasProp {
			fail(path+"."+fn, "%s takes an event name, got %q", fn, src)
		}
		if t.Within != "" {
			if w, err := canvases.ParseDuration(t.Within); err != nil {
				fail(path+".within", "%v", err)
			} else if w <= 0 {
				fail(path+".within", "a window must be longer than 0 (leave within out for all time)")
			}
		}
	}
	if r := c.Profile.RFM; r != nil {
		if r.Event == "" || r.Amount == "" {
			fail("profile.rfm", "event and amount are required")
		}
		if w, err := canvases.ParseDuration(r.Window); err != nil {
			fail("profile.rfm.window", "%v", err)
		} else if w <= 0 {
			fail("profile.rfm.window", "the window must be longer than 0")
		}
	}
	for _, section := range sortedKeys(c.Channels) {
		fields := c.Channels[section]
		if !slices.Contains(ChannelSections, section) {
			fail("channels."+section, "%s", didYouMean("unknown channel section; use "+strings.Join(ChannelSections, ", "), section, ChannelSections))
			continue
		}
		if p, ok := fields["provider"]; ok {
			ps, _ := p.(string)
			if allowed := providers(section); !slices.Contains(allowed, ps) {
				fail("channels."+section+".provider", "%q is not one of %s", ps, strings.Join(allowed, ", "))
			}
		}
	}
	if n := c.Run.ConfirmAbove; n != nil && *n < 0 {
		fail("run.confirm_above", "%d is negative; give the number of users above which huabu run asks first (0: never ask)", *n)
	}
	if c.Triggers.Window != "" {
		if d, err := time.ParseDuration(c.Triggers.Window); err != nil || d <= 0 || d > time.Minute {
			fail("triggers.window", "%q is not a duration between 1ms and 1m (e.g. 200ms)", c.Triggers.Window)
		}
	}
	if q := c.Policy.QuietHours; q != nil {
		if q.From == "" || q.To == "" {
			fail("policy.quiet_hours", "from and to are required, like {from: \"21:00\", to: \"08:00\"}")
		}
		if q.Action != "delay" && q.Action != "drop" {
			fail("policy.quiet_hours.action", "%q is not delay or drop", q.Action)
		}
	}
	for i, f := range c.Policy.Frequency {
		path := fmt.Sprintf("policy.frequency[%d]", i)
		if f.Channel == "" {
			fail(path+".channel", "channel is required: a channel name or any")
		}
		if f.Max < 1 {
			fail(path+".max", "must be at least 1")
		}
		if f.Per == "" {
			fail(path+".per", "per is required: the window, like 1d")
		}
	}
	for _, name := range sortedKeys(c.Profile.Attributes) {
		t, path := canvases.FieldType(c.Profile.Attributes[name]), "profile.attributes."+name
		switch {
		case !slices.Contains(canvases.FieldTypes, t):
			fail(path, "unknown type %q; use %s", t, fieldTypeList())
		case !traitNameRE.MatchString(name):
			fail(path, "names must be lowercase letters, digits and _")
		case slices.Contains([]string{"id", "tags", "traits", "rfm"}, name):
			fail(path, "%q is built in", name)
		case slices.Contains(canvases.ReservedAttributes, name) && t != canvases.TypeString:
			fail(path, "reserved attribute %q is a string", name)
		}
	}
	for _, ev := range sortedKeys(c.Events) {
		for _, p := range sortedKeys(c.Events[ev]) {
			if t := canvases.FieldType(c.Events[ev][p]); !slices.Contains(canvases.FieldTypes, t) {
				fail("events."+ev+"."+p, "unknown type %q; use %s", t, fieldTypeList())
			}
		}
	}
	if doc.HasErrors() {
		return // the schema and the compiler would only repeat them
	}
	opts, err := c.CompilerOptions()
	var comp *canvases.Compiler
	if err == nil {
		comp, err = canvases.NewCompiler(opts)
	}
	if err != nil {
		// The schema's own errors name their key: profile.attributes.x: ...
		path, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			path, msg = "profile", err.Error()
		}
		fail(path, "%s", msg)
		return
	}
	for _, tag := range sortedKeys(c.Tags) {
		doc.CheckCondition("tags."+tag, comp)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fieldTypeList() string {
	names := make([]string, len(canvases.FieldTypes))
	for i, t := range canvases.FieldTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// didYouMean suggests the closest of candidates for a misspelt word.
func didYouMean(msg, s string, candidates []string) string {
	if c := canvases.Suggest(s, candidates); c != "" {
		return fmt.Sprintf("%s (did you mean %q?)", msg, c)
	}
	return msg
}

// ChannelSections are the keys allowed under channels:.
var ChannelSections = channels.Sections()

// providers lists the provider names a section accepts, from the channel
// specs this build registers (channels.Providers); the first is the
// default, "outbox" routes a section to the outbox on purpose.
func providers(section string) []string { return channels.Providers(section) }

// Provider returns the provider configured for a channel section, or "".
func (c *Config) Provider(section string) string {
	fields, ok := c.Channels[section]
	if !ok {
		return ""
	}
	if p, ok := fields["provider"].(string); ok && p != "" {
		return p
	}
	return providers(section)[0]
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
)

// CompilerOptions is what the canvas compiler needs from the config.
func (c *Config) CompilerOptions() (canvases.Options, error) {
	s, err := c.Schema()
	if err != nil {
		return canvases.Options{}, err
	}
	return canvases.Options{Schema: s, Timezone: c.Timezone, Channels: c.ChannelProviders(), TemplateCodeOnly: c.templateCodeOnly()}, nil
}

// templateCodeOnly names the channels whose configured provider's spec
// sends only approved templates.
func (c *Config) templateCodeOnly() map[string]bool {
	out := map[string]bool{}
	for name, provider := range c.ChannelProviders() {
		if spec, _, ok := channels.Lookup(name, provider); ok && spec.TemplateCodeOnly {
			out[name] = true
		}
	}
	return out
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
	for _, tag := range sortedKeys(c.Tags) {
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
