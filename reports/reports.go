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

	"github.com/huabu/huabu/canvases"
	"github.com/huabu/huabu/store"
)

// Store is what reports read.
type Store interface {
	Canvas(ctx context.Context, id string) (store.DeployedCanvas, error)
	Plan(ctx context.Context, hash string) ([]byte, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	Runs(ctx context.Context, canvasID string, limit int) ([]store.Run, error)
	Counts(ctx context.Context, canvasID string, runID int64) (map[string]*store.StepCounts, int64, error)
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
	ExitedEarly int64               `json:"exited_early"`
	Steps       []*store.StepCounts `json:"steps"`
}

// RunSummary is one run in a report.
type RunSummary struct {
	ID        int64  `json:"id"`
	Trigger   string `json:"trigger"`
	State     string `json:"state"`
	Entered   int64  `json:"entered"`
	StartedAt string `json:"started_at"`
	Plan      string `json:"plan"`
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
	for _, run := range runs {
		r.Entered += run.Entered
		r.Runs = append(r.Runs, RunSummary{ID: run.ID, Trigger: run.Trigger, State: run.State, Entered: run.Entered,
			StartedAt: run.StartedAt.Format("2006-01-02 15:04:05"), Plan: shortHash(run.PlanHash)})
	}
	counts, converted, err := st.Counts(ctx, canvasID, runID)
	if err != nil {
		return nil, err
	}
	r.Converted = converted
	if early := counts[""]; early != nil {
		r.ExitedEarly = early.Exited
		delete(counts, "")
	}
	for _, s := range plan.Steps {
		c := counts[s.ID]
		if c == nil {
			c = &store.StepCounts{StepID: s.ID}
		}
		delete(counts, s.ID)
		r.Steps = append(r.Steps, c)
	}
	// Steps of older versions that are gone from this plan come last.
	var rest []string
	for id := range counts {
		rest = append(rest, id)
	}
	sort.Strings(rest)
	for _, id := range rest {
		r.Steps = append(r.Steps, counts[id])
	}
	return r, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// WriteText prints a report as a table.
func (r *Report) WriteText(w io.Writer) error {
	scope := "all runs"
	if r.RunID > 0 {
		scope = fmt.Sprintf("run %d", r.RunID)
	}
	fmt.Fprintf(w, "%s (%s) — %s, plan %s\n", r.CanvasID, r.Name, scope, r.PlanHash)
	fmt.Fprintf(w, "runs: %d   entered: %d   converted: %d   left by exit event: %d\n\n", len(r.Runs), r.Entered, r.Converted, r.ExitedEarly)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tENTERED\tSENT\tFAILED\tSUPPRESSED\tUNKNOWN\tEXITED\tCONVERTED")
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\n", s.StepID, s.Entered, s.Sent, reasons(s.Failed), reasons(s.Suppressed), s.Unknown, s.Exited, s.Converted)
		// A step on a loop: each visit on its own line, under the total.
		for _, v := range s.Visits {
			fmt.Fprintf(tw, "  visit %d\t%d\t%d\t%s\t%s\t%d\t\t%d\n", v.Visit, v.Entered, v.Sent, reasons(v.Failed), reasons(v.Suppressed), v.Unknown, v.Converted)
		}
	}
	return tw.Flush()
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
