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

func (b *builder) step(v *Value, following string) *Step {
	st := &Step{ID: v.Get("id").String(), Name: v.Get("name").String()}
	for _, k := range StepKinds {
		if v.Written(k) {
			st.Kind = k
			break
		}
	}
	body := v.Get(st.Kind)
	if st.Kind == "" || st.ID == "" {
		b.graphUnknown = true
		return nil
	}
	if body == nil {
		// The body is invalid (reported). Branches, splits and waits for an
		// event hide edges; other kinds still just flow to next.
		if st.Kind == StepBranch || st.Kind == StepSplit || st.Kind == StepWait && v.Raw[st.Kind] != nil && isMappingValue(v, st.Kind) {
			b.graphUnknown = true
			return nil
		}
	}
	path := v.Path + "." + st.Kind
	st.Next = following
	if nv := v.Get("next"); nv != nil || v.Written("next") {
		switch st.Kind {
		case StepBranch, StepSplit:
			b.errorf(nv, v.Path+".next", "a %s decides where users go in its arms; remove next", st.Kind)
		case StepExit:
			b.errorf(nv, v.Path+".next", "an exit step ends the canvas; remove next")
		default:
			st.Next = b.ref(nv, v, "next")
		}
	}
	switch {
	case body == nil:
		if st.Kind == StepExit {
			st.Next = ""
		}
	case st.Kind == StepPush:
		st.Push = b.push(body, path)
	case st.Kind == StepWait:
		st.Wait = b.wait(body, v, path)
	case st.Kind == StepBranch:
		st.Branch = b.branch(body, v)
		st.Next = ""
	case st.Kind == StepSplit:
		st.Split = b.split(body, v)
		st.Next = ""
	case st.Kind == StepTag:
		st.Tag = b.tag(body)
	case st.Kind == StepStaffTask:
		st.StaffTask = b.staffTask(body)
	case st.Kind == StepExit:
		st.Exit = &ExitStep{Reason: body.Get("reason").String()}
		st.Next = ""
	}
	return st
}

func (b *builder) message(v *Value) Message {
	m := Message{
		Text: v.Get("text").String(), Title: v.Get("title").String(), Markdown: v.Get("markdown").String(),
		Description: v.Get("description").String(), URL: v.Get("url").String(), Image: v.Get("image").String(),
		Template: v.Get("template").String(), Params: v.Get("params").StringMap(), SignName: v.Get("sign_name").String(),
		Subject: v.Get("subject").String(), HTML: v.Get("html").String(), Data: v.Get("data").StringMap(),
		Attachments: attachments(v.Get("attachments")), ChatID: v.Get("chat_id").String(),
	}
	return m
}

func attachments(v *Value) []Attachment {
	if v == nil {
		return nil
	}
	out := make([]Attachment, 0, len(v.Items))
	for _, a := range v.Items {
		out = append(out, Attachment{
			Type: a.Get("type").String(), Title: a.Get("title").String(), URL: a.Get("url").String(),
			Image: a.Get("image").String(), Description: a.Get("description").String(),
			AppID: a.Get("appid").String(), Page: a.Get("page").String(), MediaID: a.Get("media_id").String(),
		})
	}
	return out
}

// templatesOf lists the template values in a message object.
func templatesOf(v *Value) []*Value {
	var out []*Value
	for _, name := range v.Keys {
		f := v.Fields[name]
		switch {
		case f.Type.Kind == KindTemplate:
			out = append(out, f)
		case name == "params" || name == "data":
			for _, k := range f.Keys {
				out = append(out, f.Fields[k])
			}
		case name == "attachments":
			for _, a := range f.Items {
				for _, ak := range a.Keys {
					if a.Fields[ak].Type.Kind == KindTemplate {
						out = append(out, a.Fields[ak])
					}
				}
			}
		}
	}
	return out
}

func (b *builder) push(v *Value, path string) *Push {
	p := &Push{Channel: v.Get("channel").String(), Message: b.message(v)}
	for _, t := range templatesOf(v) {
		b.checkTemplate(t, b.compiler.push)
	}
	ch := Channel(p.Channel)
	if ch == nil {
		return p
	}
	p.To = ch.Recipients[0]
	if to := v.Get("to"); to != nil {
		p.To = to.Str
		if !slices.Contains(ch.Recipients, to.Str) {
			b.errorf(to, to.Path, "%s reaches %s, not %q", ch.Name, joinOr(ch.Recipients), to.Str)
		}
	}
	var fb *ChannelContent
	if fv := v.Get("fallback"); fv != nil {
		if fv.Type.Kind == KindString {
			fb = Channel(fv.Str)
			p.Fallback = &Fallback{Channel: fv.Str, Message: p.Message}
		} else {
			fb = Channel(fv.Get("channel").String())
			p.Fallback = &Fallback{Channel: fv.Get("channel").String(), Message: b.message(fv)}
			for _, t := range templatesOf(fv) {
				b.checkTemplate(t, b.compiler.push)
			}
			if fb != nil {
				b.content(fv, fb, nil, fv.Path)
			}
		}
		if fb != nil && fb.Name == ch.Name {
			b.errorf(fv, fv.Path, "the fallback is the same channel as the push")
		}
		if fb != nil {
			b.configured(fb, fv)
		}
	}
	if fv := v.Get("fallback"); fv != nil && fv.Type.Kind == KindString && fb != nil {
		b.content(v, ch, fb, path) // one content serves both channels
	} else {
		b.content(v, ch, nil, path)
	}
	b.configured(ch, v.Get("channel"))
	if ch.OneTextPerSender && templateUses(p.Text, "user") {
		b.warnf(v.Get("text"), v.Path+".text", "%s sends one text per staff member's mass-send task; personalising it with {{ .user.* }} creates one task per customer for staff to confirm", ch.Name)
	}
	return p
}

// content checks a message's fields against what the channel (and, when the
// fallback shares the content, the fallback channel) reads.
func (b *builder) content(v *Value, ch, shared *ChannelContent, path string) {
	sms := ch.Name == "sms" || (shared != nil && shared.Name == "sms")
	needsCode := false
	if sms {
		needsCode = slices.Contains(Channel("sms").TemplateCodeProviders, b.compiler.opts.Channels["sms"])
	}
	for _, name := range v.Keys {
		if !slices.Contains(contentFields, name) {
			continue
		}
		if ch.reads(name) || (shared != nil && shared.reads(name)) {
			continue
		}
		users := []string{ch.Name}
		if shared != nil {
			users = append(users, shared.Name)
		}
		b.errAt(v.Raw[name], join(path, name), "%s does not use %q; it reads %s", joinOr(users), name, quoteList(fieldsOf(ch, shared)))
	}
	for _, c := range []*ChannelContent{ch, shared} {
		if c == nil || len(c.AnyOf) == 0 {
			continue
		}
		has := slices.ContainsFunc(c.AnyOf, v.Written)
		if c.Name == "sms" && !has && v.Written("text") && !needsCode {
			has = true // the outbox records text as it is
		}
		if !has {
			if c.Name == "sms" && v.Written("text") {
				b.errAt(v.Raw["text"], join(path, "text"), "sms sends provider-approved templates only (provider %s): put the template code in template: and its variables in params:", b.compiler.opts.Channels["sms"])
				continue
			}
			at := v.Node
			if v.Key != nil {
				at = v.Key
			}
			b.errAt(at, path, "%s needs %s", c.Name, quoteList(c.AnyOf))
		}
	}
	// Text next to a template is only a mistake when no other channel of
	// the push reads it (a push with an SMS fallback shares both fields).
	otherReadsText := (ch.Name != "sms" && ch.reads("text")) || (shared != nil && shared.Name != "sms" && shared.reads("text"))
	if sms && v.Written("text") && v.Written("template") && !otherReadsText {
		b.errAt(v.Raw["text"], join(path, "text"), "sms sends the template; text is not used with template")
	} else if sms && v.Written("text") && !needsCode && b.compiler.opts.Channels["sms"] == "" {
		b.warnf(v.Get("text"), join(path, "text"), "SMS providers in China send only approved templates; give the template code in template: and its variables in params:")
	}
}

func fieldsOf(chs ...*ChannelContent) []string {
	var out []string
	for _, c := range chs {
		if c == nil {
			continue
		}
		for _, f := range c.Fields {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// configured warns, once per channel and file, when a channel has no provider.
func (b *builder) configured(ch *ChannelContent, at *Value) {
	if ch.Name == "outbox" || b.warnedChannel[ch.Name] {
		return
	}
	if _, ok := b.compiler.opts.Channels[ch.Name]; ok {
		return
	}
	b.warnedChannel[ch.Name] = true
	path := ""
	if at != nil {
		path = at.Path
	}
	b.warnf(at, path, "channel %s is not configured (channels.%s in huabu.yaml); its messages go to the outbox", ch.Name, ch.ConfigSection)
}

func (b *builder) wait(v *Value, step *Value, path string) *Wait {
	if v.Type.Kind == KindDuration {
		return &Wait{Kind: WaitDuration, Duration: v.Dur}
	}
	w := &Wait{}
	onlyWith := func(field, kind string) {
		if v.Written(field) {
			b.errAt(v.Raw[field], join(path, field), "%s only applies to %s", field, kind)
		}
	}
	switch {
	case v.Has("duration"):
		w.Kind, w.Duration = WaitDuration, v.Get("duration").Duration()
		for _, f := range []string{"timezone"} {
			onlyWith(f, "wait until a time of day")
		}
	case v.Has("until"):
		u := v.Get("until").String()
		if clockRE.MatchString(u) {
			w.Kind, w.Until, w.Timezone = WaitUntil, u, v.Get("timezone").String()
		} else {
			w.Kind, w.At = WaitAt, utcTime(v.Get("until"))
			onlyWith("timezone", "wait until a time of day (an RFC 3339 time carries its offset)")
		}
	case v.Has("event"):
		w.Kind, w.Event = WaitEvent, v.Get("event").String()
		w.When = strings.TrimSpace(v.Get("when").String())
		w.Timeout = v.Get("timeout").Duration()
		b.checkExpr(v.Get("when"), b.compiler.eventScope(w.Event))
		if !v.Written("timeout") {
			b.errAt(v.Key, path, "waiting for an event needs a timeout, or users could wait forever")
		}
		onlyWith("timezone", "wait until a time of day")
		w.OnTimeout = b.ref(v.Get("on_timeout"), v, "on_timeout")
	default:
		return nil // the walker reported the missing kind
	}
	if w.Kind != WaitEvent {
		for _, f := range []string{"when", "timeout", "on_timeout"} {
			onlyWith(f, "wait for an event")
		}
	}
	return w
}

func (b *builder) branch(v *Value, step *Value) []BranchArm {
	var arms []BranchArm
	elseAt := -1
	if len(v.Items) != len(v.Node.Content) {
		b.graphUnknown = true
	}
	for i, a := range v.Items {
		if a.Has("else") || a.Written("else") {
			if a.Written("goto") {
				b.errAt(a.Raw["goto"], a.Path+".goto", "else takes the step id itself: {else: STEP}")
			}
			if elseAt >= 0 {
				b.errAt(a.Raw["else"], a.Path, "a branch has one else")
				continue
			}
			elseAt = i
			arms = append(arms, BranchArm{Goto: b.ref(a.Get("else"), a, "else")})
			continue
		}
		if !a.Written("when") {
			continue // the walker reported it
		}
		if !a.Written("goto") {
			b.errAt(a.Node, a.Path, "this arm has when but no goto: say which step matching users go to")
			b.graphUnknown = true
		}
		if elseAt >= 0 && elseAt < i {
			b.errAt(a.Node, a.Path, "arms after else are never checked; put else last")
		}
		b.checkExpr(a.Get("when"), b.compiler.branch)
		arms = append(arms, BranchArm{When: strings.TrimSpace(a.Get("when").String()), Goto: b.ref(a.Get("goto"), a, "goto")})
	}
	if elseAt < 0 && len(v.Items) == len(v.Node.Content) {
		b.errAt(step.Raw["branch"], v.Path, "branch has no else; add {else: STEP} as the last arm so every user has a path")
	}
	// Keep else last so the engine reads arms in order.
	slices.SortStableFunc(arms, func(x, y BranchArm) int {
		switch {
		case x.When == "" && y.When != "":
			return 1
		case x.When != "" && y.When == "":
			return -1
		}
		return 0
	})
	return arms
}

func (b *builder) split(v *Value, step *Value) []SplitArm {
	var arms []SplitArm
	total, complete := 0, len(v.Items) == len(v.Node.Content)
	names := map[string]bool{}
	for i, a := range v.Items {
		w := a.Get("weight")
		if w == nil {
			complete = false
		} else if w.Int < 1 || w.Int > 100 {
			b.errorf(w, w.Path, "weight must be between 1 and 100, got %d", w.Int)
			complete = false
		} else {
			total += int(w.Int)
		}
		arm := SplitArm{Weight: int(w.Integer()), Goto: b.ref(a.Get("goto"), a, "goto"), Name: a.Get("name").String()}
		if arm.Name == "" {
			arm.Name = variantName(i) // A, B, C as operators name A/B variants
		}
		if names[arm.Name] {
			b.errorf(a.Get("name"), a.Path+".name", "two arms are both named %q; give them different names so reports can tell them apart", arm.Name)
		}
		names[arm.Name] = true
		arms = append(arms, arm)
	}
	if !complete {
		b.graphUnknown = true
	} else if total != 100 {
		b.errAt(step.Raw["split"], v.Path, "split weights add up to %d, not 100", total)
	}
	return arms
}

func (b *builder) tag(v *Value) *Tag {
	t := &Tag{Add: v.Get("add").Strings(), Remove: v.Get("remove").Strings()}
	if !v.Written("add") && !v.Written("remove") {
		at := v.Node
		if v.Key != nil {
			at = v.Key
		}
		b.errAt(at, v.Path, "tag needs add or remove")
	}
	for _, a := range v.Get("add").List() {
		if slices.Contains(t.Remove, a.Str) {
			b.errorf(a, a.Path, "tag %q is both added and removed", a.Str)
		}
	}
	return t
}

func (b *builder) staffTask(v *Value) *StaffTask {
	s := &StaffTask{
		To: StaffToCustomers, Text: v.Get("text").String(), Attachments: attachments(v.Get("attachments")),
		Notice: v.Get("notice").String(), EscalateTo: "owner.leader",
	}
	if t := v.Get("to"); t != nil {
		s.To = t.Str
	}
	if e := v.Get("escalate_to"); e != nil {
		s.EscalateTo = e.Str
	}
	b.checkTemplate(v.Get("text"), b.compiler.staffText)
	for _, a := range v.Get("attachments").List() {
		for _, k := range a.Keys {
			if a.Fields[k].Type.Kind == KindTemplate {
				b.checkTemplate(a.Fields[k], b.compiler.staffText)
			}
		}
	}
	b.checkTemplate(v.Get("notice"), b.compiler.staffNotice)
	if d := v.Get("deadline"); d != nil {
		if d.Type.Kind == KindDuration {
			s.Deadline = d.Dur
		} else {
			s.DeadlineAt = d.Get("at").String()
		}
	}
	var offsets []time.Duration
	clocks := 0
	seen := map[string]bool{}
	if rv := v.Get("remind"); rv != nil {
		for _, r := range rv.Items {
			canonical := r.Str
			if !clockRE.MatchString(r.Str) {
				d, _ := ParseDuration(r.Str)
				canonical = d.String()
				offsets = append(offsets, d.Std())
				if s.Deadline > 0 && d >= s.Deadline {
					b.errorf(r, r.Path, "reminder %s comes at or after the deadline %s", r.Str, s.Deadline)
				}
			} else {
				clocks++
			}
			if seen[canonical] {
				b.errorf(r, r.Path, "reminder %s is listed twice", r.Str)
			}
			seen[canonical] = true
			s.Remind = append(s.Remind, canonical)
		}
		// WeCom allows remind_groupmsg_send at most 3 times in 24 hours.
		// Times of day may all fall in one day, so they count against every window.
		slices.Sort(offsets)
		worst := clocks
		for i := range offsets {
			n := clocks
			for _, o := range offsets[i:] {
				if o-offsets[i] < 24*time.Hour {
					n++
				}
			}
			worst = max(worst, n)
		}
		if worst > 3 {
			b.errorf(rv, rv.Path, "%d reminders within 24 hours; WeCom allows at most 3", worst)
		}
	}
	return s
}

// checkGraph reports steps nothing leads to and loops without a wait.
func (b *builder) checkGraph(sv *Value) {
	steps := b.plan.Steps
	index := map[string]int{}
	for i, s := range steps {
		index[s.ID] = i
	}
	edges := make([][]int, len(steps))
	for i, s := range steps {
		for _, t := range successors(s) {
			if j, ok := index[t]; ok {
				edges[i] = append(edges[i], j)
			}
		}
	}
	reached := make([]bool, len(steps))
	queue := []int{0}
	reached[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range edges[i] {
			if !reached[j] {
				reached[j] = true
				queue = append(queue, j)
			}
		}
	}
	stepValue := map[string]*Value{}
	for _, it := range sv.Items {
		stepValue[it.Get("id").String()] = it
	}
	for i, s := range steps {
		if !reached[i] {
			idv := stepValue[s.ID].Get("id")
			b.errorf(idv, stepValue[s.ID].Path, "step %q is never reached: no step leads to it", s.ID)
		}
	}
	// A loop is only safe when a wait paces it.
	for _, comp := range stronglyConnected(len(steps), func(i int) []int {
		if steps[i].Kind == StepWait {
			return nil
		}
		var out []int
		for _, j := range edges[i] {
			if steps[j].Kind != StepWait {
				out = append(out, j)
			}
		}
		return out
	}) {
		selfLoop := len(comp) == 1 && slices.Contains(edges[comp[0]], comp[0])
		if len(comp) < 2 && !selfLoop {
			continue
		}
		slices.Sort(comp)
		ids := make([]string, len(comp))
		for k, i := range comp {
			ids[k] = steps[i].ID
		}
		first := stepValue[steps[comp[0]].ID]
		b.errorf(first.Get("id"), first.Path, "steps %s loop back without a wait; users would go round forever (add a wait to the loop)", strings.Join(append(ids, ids[0]), " → "))
	}
	// Staff tasks are kept per run and step (one task per staff member), so
	// a second visit would have nowhere to go.
	for _, comp := range stronglyConnected(len(steps), func(i int) []int { return edges[i] }) {
		if len(comp) < 2 && !slices.Contains(edges[comp[0]], comp[0]) {
			continue
		}
		slices.Sort(comp)
		for _, i := range comp {
			if steps[i].Kind == StepStaffTask {
				v := stepValue[steps[i].ID]
				b.errorf(v.Get("id"), v.Path, "staff_task %q is on a loop; a staff task runs once per run (use a scheduled canvas for a recurring SOP)", steps[i].ID)
			}
		}
	}
}

// successors lists the step ids a step can lead to.
func successors(s *Step) []string {
	var out []string
	if s.Next != "" {
		out = append(out, s.Next)
	}
	for _, a := range s.Branch {
		out = append(out, a.Goto)
	}
	for _, a := range s.Split {
		out = append(out, a.Goto)
	}
	if s.Wait != nil && s.Wait.OnTimeout != "" {
		out = append(out, s.Wait.OnTimeout)
	}
	return out
}

// stronglyConnected is Tarjan's algorithm over nodes 0..n-1.
func stronglyConnected(n int, next func(int) []int) [][]int {
	index, low := make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var out [][]int
	counter := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range next(v) {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			out = append(out, comp)
		}
	}
	for v := 0; v < n; v++ {
		if index[v] < 0 {
			visit(v)
		}
	}
	return out
}

// isMappingValue reports whether the raw value of a field is a mapping.
func isMappingValue(v *Value, field string) bool {
	n := v.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == field {
			return n.Content[i+1].Kind == yaml.MappingNode
		}
	}
	return false
}

// variantName names split arm i: A, B, ... Z, then V27, V28.
func variantName(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprintf("V%d", i+1)
}
