package canvases

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Options is what validation needs to know from the config.
type Options struct {
	Schema   Schema
	Timezone string // default zone of schedules and `until`; Asia/Shanghai when empty
	// Channels maps each configured channel name to its provider ("wecom",
	// "aliyun", "outbox", ...). A channel missing here falls back to the
	// outbox, which validation reports as a warning.
	Channels map[string]string
	// TemplateCodeOnly names the channels whose configured provider sends
	// only templates it approved (Chinese SMS carriers): their push steps
	// must give a template code. Config derives it from the provider specs
	// (channels.Spec.TemplateCodeOnly).
	TemplateCodeOnly map[string]bool
	// Now is the clock of now(), days_since and days_until in conditions
	// this compiler compiles for evaluation (default time.Now): a
	// simulation evaluates them in its virtual time.
	Now func() time.Time
}

// Compiler checks and compiles canvases against one config. It is safe for
// concurrent use; building it once makes validating many files cheap.
type Compiler struct {
	opts Options
	env  *Env

	audience, branch, push, staffText, staffNotice *scope
	eventScopes                                    sync.Map // event name → *scope
}

// NewCompiler builds the typed environments of a config's schema.
func NewCompiler(opts Options) (*Compiler, error) {
	if opts.Timezone == "" {
		opts.Timezone = "Asia/Shanghai"
	}
	if _, err := LoadLocation(opts.Timezone); err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	env, err := NewEnv(opts.Schema)
	if err != nil {
		return nil, err
	}
	c := &Compiler{opts: opts, env: env}
	onlyEvents := "event is only known in event conditions (trigger.event.when, exit, goal, wait for an event)"
	onlyBranches := "visit is only known in branch conditions (how many times the user has come to that step in this run)"
	c.audience = newScope(map[string]*envNode{"user": env.user}, map[string]string{
		"event": onlyEvents,
		"staff": "staff is only known in staff_task texts",
		"visit": onlyBranches,
	})
	c.branch = newScope(map[string]*envNode{"user": env.user, "visit": newLeaf("visit", TypeInteger)}, map[string]string{
		"event": onlyEvents,
		"staff": "staff is only known in staff_task texts",
	})
	c.push = newScope(map[string]*envNode{"user": env.user, "owner": env.owner}, map[string]string{
		"staff": "{{ .staff }} is for staff_task texts; in a push, the customer's owner is {{ .owner }}",
		"task":  "{{ .task }} is for staff_task notices",
		"event": "message texts cannot use the event yet",
	})
	perStaff := "a staff_task text is one text per staff member's task (WeCom sends the same content to all of that member's customers), so it can use {{ .staff.* }} but not {{ .user.* }}"
	c.staffText = newScope(map[string]*envNode{"staff": env.staff}, map[string]string{
		"user":  perStaff,
		"owner": "in a staff_task the staff member is {{ .staff }}",
		"task":  "{{ .task }} is for the notice, not the text customers receive",
	})
	c.staffNotice = newScope(map[string]*envNode{"staff": env.staff, "task": env.task}, map[string]string{
		"user":  "the notice goes to the staff member once, so it can use {{ .staff.* }} and {{ .task.* }} but not {{ .user.* }}",
		"owner": "in a staff_task the staff member is {{ .staff }}",
	})
	return c, nil
}

// Env returns the typed environments the compiler checks against.
func (c *Compiler) Env() *Env { return c.env }

// Options returns the options the compiler was built with (defaults applied).
func (c *Compiler) Options() Options { return c.opts }

func (c *Compiler) clock() func() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now
	}
	return time.Now
}

func (c *Compiler) eventScope(event string) *scope {
	if s, ok := c.eventScopes.Load(event); ok {
		return s.(*scope)
	}
	s := newScope(map[string]*envNode{"user": c.env.user, "event": c.env.event(event)}, map[string]string{
		"staff": "staff is only known in staff_task texts",
		"visit": "visit is only known in branch conditions (how many times the user has come to that step in this run)",
	})
	actual, _ := c.eventScopes.LoadOrStore(event, s)
	return actual.(*scope)
}

// CompileFile reads and compiles one canvas file.
func (c *Compiler) CompileFile(path string) (*Plan, Problems) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Line: 1, Column: 1, Severity: Error, Message: fmt.Sprintf("cannot read: %v", errorCause(err))}}
	}
	return c.Compile(path, src)
}

func errorCause(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Compile checks one canvas file and, when it has no errors, returns its
// Plan. Problems holds every error and warning, sorted by position.
func (c *Compiler) Compile(file string, src []byte) (*Plan, Problems) {
	u := &unit{file: file, src: src, compiler: c}
	root := u.parseYAML()
	var plan *Plan
	if root != nil {
		if v := u.walk(root, nil, Spec, "", 0); v != nil {
			plan = u.build(v)
		}
	}
	u.problems.Sort()
	if u.problems.HasErrors() || plan == nil {
		return nil, u.problems
	}
	plan.Hash = plan.ComputeHash()
	return plan, u.problems
}

// builder turns the checked Value tree into a Plan and runs the checks that
// need the whole canvas.
type builder struct {
	*unit
	plan *Plan
	// ids maps every step id written (even of invalid steps) to its node.
	ids map[string]*yaml.Node
	// refs are the step references to resolve once all ids are known.
	refs []stepRef
	// graphUnknown is set when an invalid step or reference hides edges, so
	// reachability and loop checks would only echo that error.
	graphUnknown  bool
	warnedChannel map[string]bool
}

type stepRef struct {
	v *Value
}

func (u *unit) build(root *Value) *Plan {
	b := &builder{unit: u, ids: map[string]*yaml.Node{}, warnedChannel: map[string]bool{}}
	p := &Plan{
		Format:      PlanFormat,
		ID:          root.Get("id").String(),
		Name:        root.Get("name").String(),
		Description: root.Get("description").String(),
		Audience:    strings.TrimSpace(root.Get("audience").String()),
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	b.plan = p
	b.trigger(root.Get("trigger"))
	u.checkExpr(root.Get("audience"), u.compiler.audience)
	b.entry(root.Get("entry"))
	if ev := root.Get("exit"); ev != nil {
		p.Exit = b.onEvent(ev)
		if p.Trigger.Event != nil && p.Exit.Event == p.Trigger.Event.Event && p.Exit.When == "" {
			u.warnf(ev.Get("event"), "exit.event", "the exit event is the trigger event: users would leave as soon as they enter")
		}
	}
	if gv := root.Get("goal"); gv != nil {
		p.Goal = &Goal{OnEvent: *b.onEvent(gv), Within: gv.Get("within").Duration()}
	}
	b.policy(root.Get("policy"))
	b.steps(root.Get("steps"))
	return p
}

func (b *builder) trigger(tv *Value) {
	p := b.plan
	switch {
	case tv == nil:
	case tv.Has("schedule"):
		sv := tv.Get("schedule")
		s := &Schedule{Cron: sv.Get("cron").String(), Timezone: sv.Get("timezone").String()}
		if s.Timezone == "" {
			s.Timezone = b.compiler.opts.Timezone
		}
		s.At = utcTime(sv.Get("at"))
		s.Start = utcTime(sv.Get("start"))
		s.End = utcTime(sv.Get("end"))
		if s.Start != "" && s.End != "" && s.Start >= s.End {
			b.errorf(sv.Get("end"), "trigger.schedule.end", "end must be after start")
		}
		if s.At != "" && sv.Has("timezone") {
			b.errorf(sv.Get("timezone"), "trigger.schedule.timezone", "at already carries its UTC offset; timezone applies to cron only")
		}
		if sv.Has("overlap") {
			s.Overlap = sv.Get("overlap").String()
			if s.At != "" {
				b.errorf(sv.Get("overlap"), "trigger.schedule.overlap", "at runs once; overlap applies to cron only")
			}
		}
		p.Trigger = Trigger{Kind: TriggerSchedule, Schedule: s}
	case tv.Has("event"):
		ev := tv.Get("event")
		p.Trigger = Trigger{Kind: TriggerEvent, Event: &OnEvent{Event: ev.Get("name").String(), When: strings.TrimSpace(ev.Get("when").String())}}
		if ev.Get("while_paused").String() == WhilePausedDrop {
			p.Trigger.WhilePaused = WhilePausedDrop // keep is the default, left out of the plan
		}
		b.checkExpr(ev.Get("when"), b.compiler.eventScope(p.Trigger.Event.Event))
	case tv.Has("manual"):
		p.Trigger = Trigger{Kind: TriggerManual}
	}
}

func utcTime(v *Value) string {
	if v == nil {
		return ""
	}
	t, err := time.Parse(time.RFC3339, v.Str)
	if err != nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ParseReentry reads never, always or "after DURATION".
func ParseReentry(s string) (Entry, error) {
	switch s {
	case ReentryNever, ReentryAlways:
		return Entry{Reentry: s}, nil
	}
	if rest, ok := strings.CutPrefix(s, "after "); ok {
		d, err := ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return Entry{}, fmt.Errorf("reentry %q: %v", s, err)
		}
		if d <= 0 {
			return Entry{}, fmt.Errorf("reentry %q: the duration must be more than zero", s)
		}
		return Entry{Reentry: ReentryAfter, After: d}, nil
	}
	return Entry{}, fmt.Errorf("invalid reentry %q; use never, always or \"after 30d\"", s)
}

func (b *builder) entry(ev *Value) {
	p := b.plan
	if r := ev.Get("reentry"); r != nil {
		p.Entry, _ = ParseReentry(r.Str) // the walker checked it
		return
	}
	// An event journey usually runs once per person; a schedule or manual
	// run is a broadcast to whoever matches at that moment.
	if p.Trigger.Kind == TriggerEvent {
		p.Entry = Entry{Reentry: ReentryNever}
	} else {
		p.Entry = Entry{Reentry: ReentryAlways}
	}
}

func (b *builder) onEvent(v *Value) *OnEvent {
	o := &OnEvent{Event: v.Get("event").String(), When: strings.TrimSpace(v.Get("when").String())}
	b.checkExpr(v.Get("when"), b.compiler.eventScope(o.Event))
	return o
}

func (b *builder) policy(pv *Value) {
	p := b.plan
	p.Policy.Kind = "marketing"
	if k := pv.Get("kind"); k != nil {
		p.Policy.Kind = k.Str
	}
	if q := pv.Get("quiet_hours"); q != nil {
		switch q.Type.Kind {
		case KindBool:
			if q.Bool {
				b.errorf(q, q.Path, "quiet_hours: true does not say when; give {from: \"21:00\", to: \"08:00\"} or false to turn them off")
			} else {
				p.Policy.QuietHours = &QuietHours{Off: true}
			}
		default:
			qh := &QuietHours{From: q.Get("from").String(), To: q.Get("to").String(), Action: "delay"}
			if a := q.Get("action"); a != nil {
				qh.Action = a.Str
			}
			if qh.From != "" && qh.From == qh.To {
				b.errorf(q.Get("to"), q.Path+".to", "quiet hours from and to are both %s", qh.From)
			}
			p.Policy.QuietHours = qh
		}
	}
	if f := pv.Get("frequency"); f != nil {
		switch f.Type.Kind {
		case KindBool:
			if f.Bool {
				b.errorf(f, f.Path, "frequency: true does not say how often; give a list of caps or false to turn them off")
			} else {
				p.Policy.Frequency = &Frequency{Off: true}
			}
		default:
			fr := &Frequency{}
			for _, r := range f.Items {
				rule := FrequencyRule{Channel: r.Get("channel").String(), Max: int(r.Get("max").Integer()), Per: r.Get("per").Duration()}
				if mv := r.Get("max"); mv != nil && mv.Int < 1 {
					b.errorf(mv, mv.Path, "max must be at least 1")
				}
				fr.Rules = append(fr.Rules, rule)
			}
			p.Policy.Frequency = fr
		}
	}
}

// steps builds every step, then resolves references and checks the graph.
func (b *builder) steps(sv *Value) {
	if sv == nil {
		b.graphUnknown = true
		return
	}
	// Collect ids from the raw nodes first, so a reference to a step that is
	// itself invalid is not reported a second time as a missing step.
	for _, item := range sv.Node.Content {
		if item.Kind != yaml.MappingNode {
			b.graphUnknown = true
			continue
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == "id" && item.Content[i+1].Kind == yaml.ScalarNode {
				id := item.Content[i+1].Value
				if first, dup := b.ids[id]; dup {
					b.errAt(item.Content[i+1], "", "duplicate step id %q (first used on line %d)", id, first.Line)
					b.graphUnknown = true
				} else {
					b.ids[id] = item.Content[i+1]
				}
			}
		}
	}
	if len(sv.Items) != len(sv.Node.Content) {
		b.graphUnknown = true
	}
	for i, item := range sv.Items {
		following := ""
		if i+1 < len(sv.Items) {
			following = sv.Items[i+1].Get("id").String()
		}
		if st := b.step(item, following); st != nil {
			b.plan.Steps = append(b.plan.Steps, st)
		}
	}
	b.resolveRefs()
	if !b.graphUnknown && len(b.plan.Steps) > 0 {
		b.checkGraph(sv)
	}
}

func (b *builder) ref(v *Value, key *Value, name string) string {
	if v == nil {
		if key.Written(name) {
			b.graphUnknown = true // written but invalid; already reported
		}
		return ""
	}
	b.refs = append(b.refs, stepRef{v: v})
	return v.Str
}

func (b *builder) resolveRefs() {
	known := make([]string, 0, len(b.ids))
	for id := range b.ids {
		known = append(known, id)
	}
	slices.Sort(known)
	for _, r := range b.refs {
		if _, ok := b.ids[r.v.Str]; !ok {
			b.errorf(r.v, r.v.Path, "%s", didYouMean(fmt.Sprintf("no step has id %q", r.v.Str), r.v.Str, known))
			b.graphUnknown = true
		}
	}
}
