package canvases

// The canvas format, declared once. Parsing, the JSON Schema (huabu schema)
// and docs/canvas.md are all generated from these declarations.

func str(f Format, doc string) *Type { return &Type{Kind: KindString, Format: f, Doc: doc} }
func enum(doc string, values ...string) *Type {
	return &Type{Kind: KindString, Enum: values, Doc: doc}
}
func list(elem *Type, min int) *Type { return &Type{Kind: KindList, Elem: elem, MinItems: min} }

func fld(name string, t *Type, doc string) *Field { return &Field{Name: name, Type: t, Doc: doc} }
func req(name string, t *Type, doc string) *Field {
	return &Field{Name: name, Type: t, Doc: doc, Required: true}
}

func withDefault(f *Field, def string) *Field { f.Default = def; return f }
func withExample(f *Field, ex string) *Field  { f.Example = ex; return f }
func obj(name, doc string, fields ...*Field) *Type {
	return &Type{Kind: KindObject, Name: name, Doc: doc, Fields: fields}
}
func oneOf(t *Type, names ...string) *Type { t.OneOf = names; return t }
func nullIsEmpty(t *Type) *Type            { t.NullIsEmpty = true; return t }
func union(name, doc string, alts ...*Type) *Type {
	return &Type{Kind: KindUnion, Name: name, Doc: doc, Alternatives: alts}
}

var (
	tDuration = &Type{Kind: KindDuration, Doc: "45s, 30m, 36h, 3d, 2w, or combined like 1d12h"}
	tExpr     = &Type{Kind: KindExpr, Doc: "an expr-lang condition over the profile schema"}
	tTemplate = &Type{Kind: KindTemplate, Doc: "message text; Go template syntax, e.g. {{ .user.name }}"}
	tInt      = &Type{Kind: KindInt}
	tBool     = &Type{Kind: KindBool}
	tStepRef  = str(FormatStepRef, "the id of a step in this canvas")
	tEvent    = str(FormatEvent, "an event name, as sent by track")
	tChannel  = str(FormatChannel, "a channel name")
)

var specSchedule = oneOf(obj("Schedule", "Runs the canvas for its whole audience on a timetable (a Temporal Schedule).",
	withExample(fld("cron", str(FormatCron, ""), "Five-field cron (minute hour day-of-month month day-of-week) or a descriptor like @daily."), `"0 10 * * MON"`),
	withExample(fld("at", str(FormatTime, ""), "Run once at this RFC 3339 time instead of a cron timetable."), "2026-12-01T10:00:00+08:00"),
	withDefault(fld("timezone", str(FormatTimezone, ""), "IANA time zone the cron is read in."), "the config's timezone"),
	fld("start", str(FormatTime, ""), "No runs before this RFC 3339 time."),
	fld("end", str(FormatTime, ""), "No runs after this RFC 3339 time."),
	withDefault(fld("overlap", enum("", OverlapAllow, OverlapSkip, OverlapBufferOne),
		"When a run is due while earlier ones are still going (a wait of a day in a daily canvas): allow starts it anyway, each run its own cohort; skip drops it; buffer_one starts it when the running one ends (one at most waits). Cron only."),
		OverlapAllow),
), "cron", "at")

var specEventTrigger = obj("EventTrigger", "Enters a user each time they send a matching track event.",
	withExample(req("name", tEvent, "The event name."), "purchase"),
	withExample(fld("when", tExpr, "Condition over `event` (its properties) and `user`; the event must match it."), `'event.amount >= 500'`),
	withDefault(fld("while_paused", enum("", WhilePausedKeep, WhilePausedDrop),
		"What becomes of entries while the canvas is paused (`huabu pause`): keep — the users enter and hold with the rest, and go on when it is resumed; drop — events that come while it is paused enter nobody (they are still stored)."),
		WhilePausedKeep),
)

var specTrigger = oneOf(obj("Trigger", "What starts the canvas. Exactly one of schedule, event or manual.",
	fld("schedule", specSchedule, ""),
	fld("event", specEventTrigger, ""),
	fld("manual", nullIsEmpty(obj("Manual", "Started by `huabu run` or POST /api/v1/canvases/{id}/runs.")), ""),
), "schedule", "event", "manual")

var specEntry = obj("Entry", "Who may enter, and how often.",
	withDefault(fld("reentry", str(FormatReentry, ""), "never, always, or `after 30d` (again only that long after the last entry)."),
		"never for event triggers, always for scheduled and manual ones"),
)

var specCanvasExit = obj("CanvasExit", "Users leave the canvas as soon as they send this event.",
	req("event", tEvent, "The event name."),
	fld("when", tExpr, "Condition over `event` and `user`."),
)

var specGoal = obj("Goal", "A conversion: the event counts as converted in reports when it happens within the window after entry.",
	req("event", tEvent, "The event name."),
	withExample(req("within", tDuration, "Conversion window from entry."), "7d"),
	fld("when", tExpr, "Condition over `event` and `user`."),
)

var specQuietHours = obj("QuietHours", "No marketing messages between from and to, in the recipient's time zone.",
	req("from", str(FormatClock, ""), "Start of quiet time, HH:MM."),
	req("to", str(FormatClock, ""), "End of quiet time, HH:MM."),
	withDefault(fld("action", enum("", "delay", "drop"), "delay holds messages until quiet hours end; drop skips them."), "delay"),
)

var specFrequencyRule = obj("FrequencyRule", "At most max messages per window to one person.",
	req("channel", str(FormatChannelOrAny, ""), "A channel name, or `any` for all channels together."),
	req("max", tInt, "Messages allowed in the window."),
	req("per", tDuration, "The rolling window."),
)

var specPolicy = obj("Policy", "Overrides of the config's sending policy for this canvas.",
	withDefault(fld("kind", enum("", "marketing", "transactional"), "transactional messages skip quiet hours and frequency caps."), "marketing"),
	fld("quiet_hours", union("QuietHoursOrOff", "", tBool, specQuietHours), "Quiet hours for this canvas, or false to turn them off."),
	fld("frequency", union("FrequencyOrOff", "", tBool, list(specFrequencyRule, 0)), "Frequency caps for this canvas, or false to turn them off."),
)

var specAttachment = obj("Attachment", "An attachment of a WeCom customer or group message.",
	req("type", enum("", "image", "link", "miniprogram", "video", "file"), "What it is."),
	fld("title", tTemplate, "Title (link, miniprogram)."),
	fld("url", tTemplate, "Link or image URL."),
	fld("image", str(FormatNone, ""), "Cover image URL (link, miniprogram)."),
	fld("description", tTemplate, "Description (link)."),
	fld("appid", str(FormatNone, ""), "Mini program appid."),
	fld("page", str(FormatNone, ""), "Mini program page path."),
	fld("media_id", str(FormatNone, ""), "An uploaded WeCom media id (image, video, file)."),
)

// messageFields are the content fields of push (and of an object fallback).
func messageFields() []*Field {
	return []*Field{
		fld("text", tTemplate, "Message text."),
		fld("title", tTemplate, "Title (push, WeCom news card)."),
		fld("markdown", tTemplate, "Markdown body (wecom.app)."),
		fld("description", tTemplate, "Card description (wecom.app news)."),
		fld("url", tTemplate, "Link to open."),
		fld("image", tTemplate, "Image URL (wecom.app news)."),
		withExample(fld("template", str(FormatNonEmpty, ""), "Provider template code (SMS)."), "SMS_1234"),
		fld("params", &Type{Kind: KindMap, Elem: tTemplate}, "Template parameters, each a message template."),
		fld("sign_name", str(FormatNonEmpty, ""), "SMS signature; defaults to the config's."),
		fld("subject", tTemplate, "Email subject."),
		fld("html", tTemplate, "Email HTML body."),
		fld("data", &Type{Kind: KindMap, Elem: tTemplate}, "Extra data (push extras, webhook fields)."),
		fld("attachments", list(specAttachment, 1), "WeCom attachments (up to 9)."),
		fld("chat_id", str(FormatNonEmpty, ""), "A WeCom app chat id (wecom.group)."),
	}
}

var specFallback = obj("Fallback", "A second channel, with its own content, for recipients the first cannot reach.",
	append([]*Field{req("channel", tChannel, "The fallback channel.")}, messageFields()...)...)

var specPush = obj("Push", "Sends a message to every user in the cohort.",
	append([]*Field{
		withExample(req("channel", tChannel, "wecom.app, wecom.customer, wecom.group, sms, push, email, webhook or outbox."), "wecom.customer"),
		withDefault(fld("to", str(FormatRecipient, ""), "user, owner (the staff member who owns the customer) or owner.leader."), "the channel's usual recipient"),
		fld("fallback", union("FallbackChannel", "", tChannel, specFallback), "A channel name (same content) or a fallback with its own content, for recipients the first channel cannot reach."),
	}, messageFields()...)...)

var specWaitObject = oneOf(obj("Wait", "Holds the cohort: for a duration, until a time of day, or until an event (with a timeout).",
	fld("duration", tDuration, "How long to wait."),
	withExample(fld("until", str(FormatUntil, ""), "A time of day HH:MM (next occurrence, in each user's time zone) or an RFC 3339 time."), `"10:00"`),
	withDefault(fld("timezone", str(FormatTimezone, ""), "Read `until` in this zone instead of each user's."), "the user's timezone trait, else the config's"),
	fld("event", tEvent, "Wait for this event; users who send it go to next."),
	fld("when", tExpr, "Condition the event must meet (over `event` and `user`)."),
	fld("timeout", tDuration, "With event: how long to wait for it."),
	withDefault(fld("on_timeout", tStepRef, "With event: where users go when the timeout passes."), "next"),
), "duration", "until", "event")

var specWait = union("WaitSpec", "", tDuration, specWaitObject)

var specBranchArm = oneOf(obj("BranchArm", "A condition and the step it leads to; the last arm is {else: STEP}.",
	fld("when", tExpr, "Condition over `user` and `visit` (how many times the user has come to this branch in the run, 1 the first time)."),
	fld("goto", tStepRef, "Where users who match go."),
	fld("else", tStepRef, "Where everyone else goes."),
), "when", "else")

var specSplitArm = obj("SplitArm", "A share of the cohort, by stable hash of the user, so a user always takes the same path.",
	req("weight", tInt, "Percentage; the weights of a split add up to 100."),
	req("goto", tStepRef, "Where this share goes."),
	fld("name", str(FormatNonEmpty, ""), "Variant name in reports (default: A, B, C… by position)."),
)

var specTag = obj("Tag", "Adds or removes tags on every user in the cohort.",
	fld("add", list(str(FormatTag, ""), 1), "Tags to add."),
	fld("remove", list(str(FormatTag, ""), 1), "Tags to remove."),
)

var specDeadlineAt = obj("DeadlineAt", "A time of day.", req("at", str(FormatClock, ""), "HH:MM, the next occurrence after the task is created."))

var specStaffTask = obj("StaffTask", "Has staff relay content: one WeCom mass-send task per owner for their customers in the cohort (or, with to: staff, a brief to staff that they acknowledge), with a notice, reminders and escalation.",
	withDefault(fld("to", enum("", "customers", "staff"), "customers: each owner sends to their customers; staff: the users are staff and receive the text themselves."), "customers"),
	req("text", tTemplate, "The content; one text per staff member, so only {{ .staff.* }} fields."),
	fld("attachments", list(specAttachment, 1), "WeCom attachments."),
	fld("notice", tTemplate, "App message telling the staff member about the task; may use {{ .staff.* }} and {{ .task.customers }}, {{ .task.deadline }}."),
	req("deadline", union("Deadline", "", tDuration, specDeadlineAt), "A duration after creation, or {at: \"18:00\"}."),
	fld("remind", list(str(FormatOffset, ""), 1), "Reminders: durations after creation or times of day; at most 3 per 24 h."),
	withDefault(fld("escalate_to", enum("", "owner.leader", "none"), "Who is told after the deadline about tasks not done."), "owner.leader"),
)

var specExitStep = nullIsEmpty(obj("ExitStep", "Ends the canvas for the cohort.",
	fld("reason", str(FormatNonEmpty, ""), "A label shown in reports."),
))

// StepKinds lists the step kinds, in docs order.
var StepKinds = []string{"push", "wait", "branch", "split", "tag", "staff_task", "exit"}

var specStep = oneOf(obj("Step", "One step. Exactly one of push, wait, branch, split, tag, staff_task or exit, with an id.",
	withExample(req("id", str(FormatStepID, ""), "Unique within the canvas: lowercase letters, digits, - and _."), "wait-3d"),
	fld("name", str(FormatNonEmpty, ""), "A label for diagrams and reports."),
	withDefault(fld("next", tStepRef, "The step that follows (not for branch and split, whose arms say where to go)."), "the next step in the list; after the last, the canvas ends"),
	fld("push", specPush, ""),
	fld("wait", specWait, ""),
	fld("branch", list(specBranchArm, 1), "Conditions checked in order; the first that matches decides. Must end with {else: STEP}."),
	fld("split", list(specSplitArm, 2), "A/B split by percentage."),
	fld("tag", specTag, ""),
	fld("staff_task", specStaffTask, ""),
	fld("exit", specExitStep, ""),
), StepKinds...)

// Spec is the canvas file format.
var Spec = obj("Canvas", "A campaign or SOP: a trigger, an audience, then steps.",
	withExample(req("id", str(FormatCanvasID, ""), "Unique per deployment: lowercase letters, digits and -."), "winback-dormant"),
	withExample(fld("name", str(FormatNone, ""), "Display name."), "沉睡客户唤醒"),
	fld("description", str(FormatNone, ""), "What the canvas is for."),
	req("trigger", specTrigger, ""),
	withExample(fld("audience", tExpr, "Who enters: a condition over `user`. Everyone when omitted."), `'user.rfm.r <= 2 && !("vip" in user.tags)'`),
	fld("entry", specEntry, ""),
	fld("exit", specCanvasExit, ""),
	fld("goal", specGoal, ""),
	fld("policy", specPolicy, ""),
	req("steps", list(specStep, 1), "Run in order; next, goto, else and on_timeout jump by id."),
)
