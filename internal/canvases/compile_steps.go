package canvases

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
		needsCode = b.compiler.opts.TemplateCodeOnly["sms"]
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
