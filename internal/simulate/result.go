package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a simulation found. Its JSON is the contract of `huabu
// simulate --json` (../shared/CONTRACT.md): the funnel per step and each
// user's path, and nothing else at the top level.
type Result struct {
	Steps map[string]*Funnel   `json:"steps"`
	Users map[string][]Passage `json:"users"`

	// For the text output.
	CanvasID string         `json:"-"`
	Name     string         `json:"-"`
	From     time.Time      `json:"-"`
	Until    time.Time      `json:"-"`
	Order    []string       `json:"-"` // the plan's steps, in order
	Runs     []RunSummary   `json:"-"`
	Replayed int            `json:"-"` // events replayed in the period
	History  int            `json:"-"` // events before it, stored as history
	Later    int            `json:"-"` // events after it, left out
	Skipped  []time.Time    `json:"-"` // schedule firings skipped while the last run went on
	Elapsed  time.Duration  `json:"-"`
	Location *time.Location `json:"-"`
}

// Funnel is what happened at one step. Sent, suppressed and failed count
// messages (push and staff_task steps); the rest count users.
type Funnel struct {
	Entered    int64 `json:"entered"`
	Sent       int64 `json:"sent"`
	Suppressed int64 `json:"suppressed"`
	Failed     int64 `json:"failed"`
	// Delayed: sent after the user reached the step (quiet hours).
	Delayed int64 `json:"delayed,omitempty"`
	// Waiting: still at the step when the simulation ended.
	Waiting   int64 `json:"waiting,omitempty"`
	Exited    int64 `json:"exited,omitempty"`
	Converted int64 `json:"converted,omitempty"`
	// Next counts, for a branch or split, the users taking each target.
	Next map[string]int64 `json:"next,omitempty"`
	// Reasons counts the suppressed and failed by reason ("suppressed:no_address").
	Reasons map[string]int64 `json:"reasons,omitempty"`
}

// Passage is one step a user passed. At is when they passed it — for a
// message, when it was (or would be) sent, so a message held back by
// quiet hours carries its sending time and Entered the time the user got
// there.
type Passage struct {
	Step    string `json:"step"`
	At      string `json:"at"`
	Outcome string `json:"outcome"` // sent | suppressed:REASON | failed:REASON | branch:STEP | waited | exited | tagged
	Run     int64  `json:"run"`
	Entered string `json:"entered,omitempty"`
	// Messages: the channel that took it (the fallback's, if it came to
	// that) and the message as rendered for the user.
	Channel string          `json:"channel,omitempty"`
	Message json.RawMessage `json:"message,omitempty"`
	Staff   string          `json:"staff,omitempty"` // staff_task: who was asked to send it
	// Waits: until when, whether the awaited event came or the wait timed
	// out; Waiting when the simulation ended first.
	Until    string `json:"until,omitempty"`
	Event    string `json:"event,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Waiting  bool   `json:"waiting,omitempty"`
	Arm      string `json:"arm,omitempty"`    // split: the arm's name
	Reason   string `json:"reason,omitempty"` // exits; quiet_hours for a message held past the end
	// Converted: the user reached the canvas's goal while here.
	Converted string `json:"converted,omitempty"`
}

// RunSummary is one run the simulation started.
type RunSummary struct {
	ID      int64
	Trigger string
	Started time.Time
	Entered int64
	State   string
}

// WriteText prints the funnel and the paths of up to maxUsers users (all
// with maxUsers < 0) for people.
func (r *Result) WriteText(w io.Writer, maxUsers int) error {
	name := r.CanvasID
	if r.Name != "" {
		name += " (" + r.Name + ")"
	}
	fmt.Fprintf(w, "%s, simulated from %s to %s: %d run(s), %d user(s), %d event(s) replayed, in %.1fs\n",
		name, r.fmt(r.From), r.fmt(r.Until), len(r.Runs), len(r.Users), r.Replayed, r.Elapsed.Seconds())
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "%d schedule firing(s) skipped while the last run was still going\n", len(r.Skipped))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tENTERED\tSENT\tSUPPRESSED\tFAILED\tDELAYED\tWAITING\tEXITED\tCONVERTED\tNEXT")
	for _, id := range r.Order {
		f := r.Steps[id]
		if f == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", id, f.Entered, f.Sent,
			reasons(f.Suppressed, f.Reasons, "suppressed:"), reasons(f.Failed, f.Reasons, "failed:"),
			f.Delayed, f.Waiting, f.Exited, f.Converted, counts(f.Next))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ids := make([]string, 0, len(r.Users))
	for id := range r.Users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if maxUsers >= 0 && len(ids) > maxUsers {
		fmt.Fprintf(w, "\npaths of %d of %d users (--user U for one, --json for all):\n", maxUsers, len(ids))
		ids = ids[:maxUsers]
	}
	for _, id := range ids {
		fmt.Fprintln(w)
		r.writePath(w, id)
	}
	return nil
}

// WriteUser prints one user's path.
func (r *Result) WriteUser(w io.Writer, id string) error {
	if _, ok := r.Users[id]; !ok {
		return fmt.Errorf("user %q entered no step in the simulation", id)
	}
	r.writePath(w, id)
	return nil
}

func (r *Result) writePath(w io.Writer, id string) {
	fmt.Fprintln(w, id)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range r.Users[id] {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", shortTime(p.At), p.Step, describe(p))
	}
	tw.Flush()
}

// describe says what happened at a passage in a line.
func describe(p Passage) string {
	var b strings.Builder
	b.WriteString(p.Outcome)
	if p.Arm != "" {
		fmt.Fprintf(&b, " (%s)", p.Arm)
	}
	if p.Channel != "" {
		b.WriteString(" via " + p.Channel)
	}
	if p.Staff != "" {
		b.WriteString(" by " + p.Staff)
	}
	if p.Entered != "" {
		fmt.Fprintf(&b, " (reached %s, held back by quiet hours)", shortTime(p.Entered))
	}
	switch {
	case p.Event != "":
		fmt.Fprintf(&b, " until %s: %s arrived", shortTime(p.Until), p.Event)
	case p.TimedOut:
		fmt.Fprintf(&b, " until %s: timed out", shortTime(p.Until))
	case p.Waiting && p.Until != "":
		fmt.Fprintf(&b, ", still waiting when the simulation ended (until %s)", shortTime(p.Until))
	case p.Waiting:
		b.WriteString(", still waiting when the simulation ended")
	case p.Until != "" && p.Outcome == "exited":
		// Left the wait when an exit event came.
		fmt.Fprintf(&b, " from the wait at %s", shortTime(p.Until))
	case p.Until != "":
		fmt.Fprintf(&b, " until %s", shortTime(p.Until))
	}
	if p.Reason != "" {
		b.WriteString(" (" + p.Reason + ")")
	}
	if p.Converted != "" {
		fmt.Fprintf(&b, "; converted at %s", shortTime(p.Converted))
	}
	if len(p.Message) > 0 {
		b.WriteString(": " + messageLine(p.Message))
	}
	return b.String()
}

// messageLine shows a rendered message's text, or its template and params.
func messageLine(raw json.RawMessage) string {
	var m struct {
		Text     string            `json:"text"`
		Title    string            `json:"title"`
		Template string            `json:"template"`
		Params   map[string]string `json:"params"`
		Subject  string            `json:"subject"`
	}
	_ = json.Unmarshal(raw, &m)
	var parts []string
	if m.Title != "" {
		parts = append(parts, "【"+m.Title+"】")
	}
	if m.Subject != "" {
		parts = append(parts, m.Subject)
	}
	if m.Text != "" {
		parts = append(parts, fmt.Sprintf("%q", m.Text))
	}
	if m.Template != "" {
		t := m.Template
		if len(m.Params) > 0 {
			p, _ := json.Marshal(m.Params)
			t += " " + string(p)
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// shortTime drops the seconds and zone of an RFC 3339 time for tables.
func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.Format("2006-01-02 15:04")
}

func (r *Result) fmt(t time.Time) string {
	if r.Location != nil {
		t = t.In(r.Location)
	}
	return t.Format(time.RFC3339)
}

func reasons(total int64, m map[string]int64, prefix string) string {
	var parts []string
	for k, n := range m {
		if strings.HasPrefix(k, prefix) {
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, prefix), n))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprint(total)
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
