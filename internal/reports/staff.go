package reports

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// StaffReportStore is what the staff report reads.
type StaffReportStore interface {
	Canvas(ctx context.Context, id string) (store.DeployedCanvas, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	StaffReport(ctx context.Context, canvasID string, runID int64) ([]store.StaffReportRow, error)
}

// Staff report groupings.
const (
	ByStaff = "staff"
	ByGrid  = "grid"
)

// StaffRow is one staff member's (or one grid's) completion of a canvas's
// staff tasks.
type StaffRow struct {
	Staff  string `json:"staff,omitempty"`
	Name   string `json:"name,omitempty"`
	Grid   string `json:"grid"`
	Leader string `json:"leader,omitempty"`
	Staffs int    `json:"staff_members,omitempty"` // by grid: members with tasks

	Tasks     int64 `json:"tasks"`
	OnTime    int64 `json:"on_time"`
	Late      int64 `json:"late"`
	NotDone   int64 `json:"not_done"`
	Open      int64 `json:"open"`      // not done yet, deadline not passed
	Failed    int64 `json:"failed"`    // WeCom refused the task, or a crash left it unknown
	Untracked int64 `json:"untracked"` // recorded in the outbox: no WeCom to track

	Customers int64 `json:"customers"`
	Sent      int64 `json:"sent"`
	NotFriend int64 `json:"not_friend"`
	OverQuota int64 `json:"over_quota"`
	Unsent    int64 `json:"unsent"`

	// Rates over tasks that could be done (created and tracked, open ones
	// included, so a report read during the day says how far along it is):
	// on time, and done at all (on time or late). Nil when there are none.
	OnTimeRate     *float64 `json:"on_time_rate"`
	CompletionRate *float64 `json:"completion_rate"`
}

// StaffReport is a canvas's staff completion, by staff member or by grid.
type StaffReport struct {
	CanvasID string     `json:"canvas"`
	Name     string     `json:"name"`
	RunID    int64      `json:"run,omitempty"`
	By       string     `json:"by"`
	Rows     []StaffRow `json:"rows"`
	Total    StaffRow   `json:"total"`
}

// BuildStaff gathers the staff report of a canvas: one run, or all (runID 0).
func BuildStaff(ctx context.Context, st StaffReportStore, canvasID string, runID int64, by string) (*StaffReport, error) {
	if by == "" {
		by = ByStaff
	}
	if by != ByStaff && by != ByGrid {
		return nil, fmt.Errorf("by %q: use staff or grid", by)
	}
	c, err := st.Canvas(ctx, canvasID)
	if err == store.ErrNotFound {
		return nil, fmt.Errorf("%w %q", ErrNoCanvas, canvasID)
	}
	if err != nil {
		return nil, err
	}
	rep := &StaffReport{CanvasID: canvasID, RunID: runID, By: by}
	if p, err := canvases.UnmarshalPlan(c.Plan); err == nil {
		rep.Name = p.Name
	}
	if runID > 0 {
		run, err := st.GetRun(ctx, runID)
		if err != nil || run.CanvasID != canvasID {
			return nil, fmt.Errorf("canvas %s has no run %d", canvasID, runID)
		}
	}
	rows, err := st.StaffReport(ctx, canvasID, runID)
	if err != nil {
		return nil, err
	}
	grids := map[string]*StaffRow{}
	var gridOrder []string
	for _, r := range rows {
		row := StaffRow{Staff: r.Staff, Name: r.Name, Grid: r.Grid, Leader: r.Leader, Staffs: 1,
			Tasks: r.Tasks, OnTime: r.OnTime, Late: r.Late, NotDone: r.NotDone, Open: r.Open, Failed: r.Failed, Untracked: r.Untracked,
			Customers: r.Customers, Sent: r.Sent, NotFriend: r.NotFriend, OverQuota: r.OverQuota, Unsent: r.Unsent}
		add(&rep.Total, row)
		if by == ByStaff {
			row.Staffs = 0
			rep.Rows = append(rep.Rows, rates(row))
			continue
		}
		g := grids[r.Grid]
		if g == nil {
			g = &StaffRow{Grid: r.Grid}
			grids[r.Grid] = g
			gridOrder = append(gridOrder, r.Grid)
		}
		add(g, row)
	}
	sort.Strings(gridOrder)
	for _, name := range gridOrder {
		rep.Rows = append(rep.Rows, rates(*grids[name]))
	}
	rep.Total = rates(rep.Total)
	if by == ByStaff {
		rep.Total.Staffs = 0
	}
	if rep.Rows == nil {
		rep.Rows = []StaffRow{}
	}
	return rep, nil
}

func add(to *StaffRow, r StaffRow) {
	to.Staffs += r.Staffs
	to.Tasks += r.Tasks
	to.OnTime += r.OnTime
	to.Late += r.Late
	to.NotDone += r.NotDone
	to.Open += r.Open
	to.Failed += r.Failed
	to.Untracked += r.Untracked
	to.Customers += r.Customers
	to.Sent += r.Sent
	to.NotFriend += r.NotFriend
	to.OverQuota += r.OverQuota
	to.Unsent += r.Unsent
}

// rates: a task that failed to be created or was never tracked is nobody's
// lateness, so it is left out of the denominators.
func rates(r StaffRow) StaffRow {
	if n := r.OnTime + r.Late + r.NotDone + r.Open; n > 0 {
		on := float64(r.OnTime) / float64(n)
		done := float64(r.OnTime+r.Late) / float64(n)
		r.OnTimeRate, r.CompletionRate = &on, &done
	}
	return r
}

// WriteText prints the staff report as a table.
func (r *StaffReport) WriteText(w io.Writer) error {
	scope := "all runs"
	if r.RunID > 0 {
		scope = fmt.Sprintf("run %d", r.RunID)
	}
	fmt.Fprintf(w, "%s (%s) — staff tasks by %s, %s\n\n", r.CanvasID, r.Name, r.By, scope)
	head := []string{"STAFF", "NAME", "GRID"}
	if r.By == ByGrid {
		head = []string{"GRID", "STAFF"}
	}
	rows := [][]string{append(head, "TASKS", "ON TIME", "LATE", "NOT DONE", "OPEN", "FAILED", "CUSTOMERS", "SENT", "NOT FRIEND", "OVER QUOTA", "UNSENT", "ON-TIME RATE", "COMPLETION")}
	line := func(lead []string, x StaffRow) {
		cells := lead
		for _, n := range []int64{x.Tasks, x.OnTime, x.Late, x.NotDone, x.Open, x.Failed, x.Customers, x.Sent, x.NotFriend, x.OverQuota, x.Unsent} {
			cells = append(cells, fmt.Sprint(n))
		}
		rows = append(rows, append(cells, pct(x.OnTimeRate), pct(x.CompletionRate)))
	}
	for _, x := range r.Rows {
		if r.By == ByGrid {
			line([]string{orDash(x.Grid), fmt.Sprint(x.Staffs)}, x)
		} else {
			line([]string{x.Staff, orDash(x.Name), orDash(x.Grid)}, x)
		}
	}
	if r.By == ByGrid {
		line([]string{"TOTAL", fmt.Sprint(r.Total.Staffs)}, r.Total)
	} else {
		line([]string{"TOTAL", "", ""}, r.Total)
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	if r.Total.Open > 0 {
		fmt.Fprintf(w, "\n%d task(s) open: not done yet, before their deadline; the rates are so far.\n", r.Total.Open)
	}
	if r.Total.Untracked > 0 {
		fmt.Fprintf(w, "\n%d task(s) were recorded in the outbox (no WeCom configured) and are not tracked.\n", r.Total.Untracked)
	}
	return nil
}

// writeTable prints rows in columns two spaces apart, padding by display
// width: names and grids are Chinese, and a CJK character takes two
// columns of a terminal (text/tabwriter counts it as one).
func writeTable(w io.Writer, rows [][]string) error {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// displayWidth counts East Asian wide characters (CJK, Hangul, fullwidth
// forms) as two columns.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3,
			r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6,
			r >= 0x20000 && r <= 0x3FFFD:
			n += 2
		default:
			n++
		}
	}
	return n
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", *v*100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
