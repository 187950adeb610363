// Package reports assembles what a canvas did, step by step in plan order:
// entered, sent, failed and suppressed by reason, exited, converted. The CLI
// (huabu report) and the admin API (GET /api/v1/canvases/{id}/report) share it.
package reports

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// Store is what reports read.
type Store interface {
	Canvas(ctx context.Context, id string) (store.DeployedCanvas, error)
	Plan(ctx context.Context, hash string) ([]byte, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	Runs(ctx context.Context, canvasID string, limit int) ([]store.Run, error)
	Counts(ctx context.Context, canvasID string, runID int64) (map[string]*store.StepCounts, int64, error)
	StaffStepCounts(ctx context.Context, canvasID string, runID int64) (map[string]*store.StaffStepCounts, error)
}

// Report is a canvas's counts, for one run or all of them.
type Report struct {
	CanvasID  string       `json:"canvas"`
	Name      string       `json:"name"`
	PlanHash  string       `json:"plan"`
	RunID     int64        `json:"run,omitempty"` // 0: every run
	Runs      []RunSummary `json:"runs"`
	Entered   int64        `json:"entered"`
	Converted int64        `json:"converted"`
	// ExitedEarly counts users who left through the canvas's exit event.
	ExitedEarly int64         `json:"exited_early"`
	Steps       []*StepReport `json:"steps"`
}

// StepReport is one step's counts and what they mean for its kind.
type StepReport struct {
	*store.StepCounts
	Kind    string `json:"kind,omitempty"`    // push, wait, branch, split, tag, staff_task, exit
	Channel string `json:"channel,omitempty"` // push steps
	// Outbox: the push step's channel has no provider configured, so "sent"
	// means recorded in the outbox (huabu outbox); nothing left the machine.
	Outbox bool `json:"outbox,omitempty"`
	// StaffTasks: a staff_task step's tasks. Its customers are handed to
	// their staff member in a task; they are not "sent" by Huabu.
	StaffTasks *store.StaffStepCounts `json:"staff_tasks,omitempty"`
}

// RunSummary is one run in a report.
type RunSummary struct {
	ID         int64      `json:"id"`
	Trigger    string     `json:"trigger"`
	State      string     `json:"state"`
	Entered    int64      `json:"entered"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Plan       string     `json:"plan"`
}

// ErrNoCanvas means no canvas has that id.
var ErrNoCanvas = fmt.Errorf("no such canvas")

// Build gathers a report. runID 0 means every run of the canvas.
func Build(ctx context.Context, st Store, canvasID string, runID int64) (*Report, error) {
	c, err := st.Canvas(ctx, canvasID)
	if err == store.ErrNotFound {
		return nil, fmt.Errorf("%w %q", ErrNoCanvas, canvasID)
	}
	if err != nil {
		return nil, err
	}
	plan, err := canvases.UnmarshalPlan(c.Plan)
	if err != nil {
		return nil, err
	}
	r := &Report{CanvasID: canvasID, Name: plan.Name, PlanHash: plan.ShortHash(), RunID: runID}
	var runs []store.Run
	if runID > 0 {
		run, err := st.GetRun(ctx, runID)
		if err != nil || run.CanvasID != canvasID {
			return nil, fmt.Errorf("canvas %s has no run %d", canvasID, runID)
		}
		runs = []store.Run{run}
		// The run may have used an older version: report in its plan's order.
		if run.PlanHash != c.PlanHash {
			if raw, err := st.Plan(ctx, run.PlanHash); err == nil {
				if p, err := canvases.UnmarshalPlan(raw); err == nil {
					plan = p
					r.PlanHash = p.ShortHash()
				}
			}
		}
	} else if runs, err = st.Runs(ctx, canvasID, 1000); err != nil {
		return nil, err
	}
	r.Runs = []RunSummary{}
	for _, run := range runs {
		r.Entered += run.Entered
		sum := RunSummary{ID: run.ID, Trigger: run.Trigger, State: run.State, Entered: run.Entered, StartedAt: run.StartedAt, Plan: shortHash(run.PlanHash)}
		if !run.FinishedAt.IsZero() {
			at := run.FinishedAt
			sum.FinishedAt = &at
		}
		r.Runs = append(r.Runs, sum)
	}
	counts, converted, err := st.Counts(ctx, canvasID, runID)
	if err != nil {
		return nil, err
	}
	tasks, err := st.StaffStepCounts(ctx, canvasID, runID)
	if err != nil {
		return nil, err
	}
	r.Converted = converted
	if early := counts[""]; early != nil {
		r.ExitedEarly = early.Exited
		delete(counts, "")
	}
	r.Steps = []*StepReport{}
	for _, s := range plan.Steps {
		c := counts[s.ID]
		if c == nil {
			c = &store.StepCounts{StepID: s.ID}
		}
		delete(counts, s.ID)
		sr := &StepReport{StepCounts: c, Kind: s.Kind}
		if s.Push != nil {
			sr.Channel = s.Push.Channel
		}
		if s.StaffTask != nil {
			sr.StaffTasks = tasks[s.ID]
			if sr.StaffTasks == nil {
				sr.StaffTasks = &store.StaffStepCounts{}
			}
			// Customers no task could take are suppressed at this step,
			// as the run's totals count them.
			if len(sr.StaffTasks.Unassigned) > 0 {
				if c.Suppressed == nil {
					c.Suppressed = map[string]int64{}
				}
				for reason, n := range sr.StaffTasks.Unassigned {
					c.Suppressed[reason] += n
				}
			}
		}
		r.Steps = append(r.Steps, sr)
	}
	// Steps of older versions that are gone from this plan come last.
	var rest []string
	for id := range counts {
		rest = append(rest, id)
	}
	sort.Strings(rest)
	for _, id := range rest {
		r.Steps = append(r.Steps, &StepReport{StepCounts: counts[id], StaffTasks: tasks[id]})
	}
	for _, s := range r.Steps {
		if s.Failed == nil {
			s.Failed = map[string]int64{}
		}
		if s.Suppressed == nil {
			s.Suppressed = map[string]int64{}
		}
	}
	return r, nil
}

// MarkOutbox flags the push steps whose channel goes to the outbox, given
// each configured channel's provider (a channel not listed has none).
func (r *Report) MarkOutbox(providers map[string]string) {
	for _, s := range r.Steps {
		if s.Channel != "" {
			p, ok := providers[s.Channel]
			s.Outbox = !ok || p == "outbox"
		}
	}
}

// TimeLayout is how reports print a time: always with its zone's offset.
const TimeLayout = "2006-01-02 15:04:05 -07:00"

// FormatTime prints t in loc with its offset ("—" for the zero time).
func FormatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format(TimeLayout)
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// WriteText prints a report as a table, times in the machine's zone.
func (r *Report) WriteText(w io.Writer) error { return r.WriteTextIn(w, time.Local) }

// WriteTextIn prints a report as a table, times in loc (with their offset).
func (r *Report) WriteTextIn(w io.Writer, loc *time.Location) error {
	scope := "all runs"
	if r.RunID > 0 {
		scope = fmt.Sprintf("run %d", r.RunID)
	}
	fmt.Fprintf(w, "%s (%s) — %s, plan %s\n", r.CanvasID, r.Name, scope, r.PlanHash)
	fmt.Fprintf(w, "runs: %d   entered: %d   converted: %d   left by exit event: %d\n", len(r.Runs), r.Entered, r.Converted, r.ExitedEarly)
	last, ok := r.latest()
	if ok {
		fmt.Fprintf(w, "latest: run %d (%s), %s, started %s\n", last.ID, last.Trigger, last.State, FormatTime(last.StartedAt, loc))
	}
	fmt.Fprintln(w)
	if err := WriteSteps(w, r.CanvasID, r.Steps); err != nil {
		return err
	}
	if ok && last.State == "running" {
		fmt.Fprintf(w, "Run %d is still going: these are its counts so far.\n", last.ID)
	}
	return nil
}

// latest is the report's newest run.
func (r *Report) latest() (RunSummary, bool) {
	if len(r.Runs) == 0 {
		return RunSummary{}, false
	}
	last := r.Runs[0]
	for _, run := range r.Runs {
		if run.ID > last.ID {
			last = run
		}
	}
	return last, true
}

// WriteSteps prints steps as a table, then what the numbers mean where
// they could mislead: staff tasks (customers handed to staff, not sent by
// Huabu) and messages recorded in the outbox (not delivered).
func WriteSteps(w io.Writer, canvasID string, steps []*StepReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tENTERED\tSENT\tFAILED\tSUPPRESSED\tUNKNOWN\tEXITED\tCONVERTED")
	var notes []string
	outbox := false
	for _, s := range steps {
		if s == nil || s.StepCounts == nil {
			continue
		}
		sent := fmt.Sprint(s.Sent)
		switch {
		case s.StaffTasks != nil:
			// Customers are handed to staff in tasks; Huabu sends none itself.
			sent = "—"
			notes = append(notes, describe(s.StepID, s.StaffTasks))
		case s.Outbox && s.Sent > 0:
			sent += " (outbox)"
			outbox = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\n", s.StepID, s.Entered, sent, reasons(s.Failed), reasons(s.Suppressed), s.Unknown, s.Exited, s.Converted)
		// A step on a loop: each visit on its own line, under the total.
		for _, v := range s.Visits {
			fmt.Fprintf(tw, "  visit %d\t%d\t%d\t%s\t%s\t%d\t\t%d\n", v.Visit, v.Entered, v.Sent, reasons(v.Failed), reasons(v.Suppressed), v.Unknown, v.Converted)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	notes = append(notes, endedEarly(steps)...)
	if outbox {
		notes = append(notes, fmt.Sprintf("(outbox): no provider is configured for that channel, so the messages were recorded, not delivered; huabu outbox --canvas %s shows them.", canvasID))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

// endedEarly says how many users exited because their run was stopped
// (huabu stop) or cancelled, and where they were: the EXITED column counts
// them with those who finished.
func endedEarly(steps []*StepReport) []string {
	var notes []string
	for _, reason := range []string{"stopped", "cancelled"} {
		var total int64
		var where []string
		for _, s := range steps {
			if s == nil || s.StepCounts == nil || s.ExitReasons[reason] == 0 {
				continue
			}
			total += s.ExitReasons[reason]
			where = append(where, fmt.Sprintf("%s %d", s.StepID, s.ExitReasons[reason]))
		}
		if total > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d users exited because the run was %s (at %s).", reason, total, reason, strings.Join(where, ", ")))
		}
	}
	return notes
}

// describe says what a staff_task step's tasks came to.
func describe(step string, c *store.StaffStepCounts) string {
	if c.Tasks == 0 {
		return fmt.Sprintf("%s: no staff tasks yet.", step)
	}
	var parts []string
	if c.Created > 0 {
		part := fmt.Sprintf("%d created on WeCom for staff to send", c.Created)
		var how []string
		for _, x := range []struct {
			n    int64
			what string
		}{{c.Done, "done"}, {c.Open, "open"}, {c.NotDone, "not done by the deadline"}} {
			if x.n > 0 {
				how = append(how, fmt.Sprintf("%d %s", x.n, x.what))
			}
		}
		if len(how) > 0 {
			part += " (" + strings.Join(how, ", ") + ")"
		}
		parts = append(parts, part)
	}
	if c.Recorded > 0 {
		parts = append(parts, fmt.Sprintf("%d recorded in the outbox (no WeCom configured: nothing was sent)", c.Recorded))
	}
	if c.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", c.Failed))
	}
	return fmt.Sprintf("%s: %d staff task(s) for %d customer(s): %s; huabu report --staff shows each.", step, c.Tasks, c.Customers, strings.Join(parts, ", "))
}

// reasons prints counts by reason: "3 (invalid_user 2, not_friend 1)".
func reasons(m map[string]int64) string {
	var total int64
	keys := make([]string, 0, len(m))
	for k, n := range m {
		total += n
		keys = append(keys, k)
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "other"
		}
		parts[i] = fmt.Sprintf("%s %d", name, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
