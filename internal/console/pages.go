package console

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// Canvas statuses shown on the canvases page.
const (
	StatusLive       = "live"
	StatusDraft      = "draft awaiting approval"
	StatusPaused     = "paused"
	StatusStopped    = "stopped"
	StatusRetired    = "retired"
	awaitingApproval = "awaiting approval"
)

var statuses = []string{StatusLive, StatusDraft, StatusPaused, StatusStopped, StatusRetired}

// statusOf is a canvas's one status: retired beats stopped beats paused
// beats awaiting approval.
func statusOf(ci server.CanvasInfo) string {
	switch {
	case !ci.Active:
		return StatusRetired
	case ci.State == "stopped":
		return StatusStopped
	case ci.State == "paused":
		return StatusPaused
	case ci.Approval == awaitingApproval:
		return StatusDraft
	}
	return StatusLive
}

// funnel is a run's entered → sent → converted.
type funnel struct {
	Entered, Sent, Failed, Suppressed, Converted int64
}

func funnelOf(rep *reports.Report) *funnel {
	f := &funnel{Entered: rep.Entered, Converted: rep.Converted}
	for _, s := range rep.Steps {
		f.Sent += s.Sent
		f.Failed += total(s.Failed)
		f.Suppressed += total(s.Suppressed)
	}
	return f
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

type canvasRow struct {
	server.CanvasInfo
	Status  string
	Fires   []time.Time // the next schedule fire times
	LastRun *server.RunInfo
	Funnel  *funnel
}

type canvasesData struct {
	Rows     []canvasRow
	Query    string
	Status   string
	Statuses []string
	Total    int
}

// canvasesPage lists every canvas (GET / and /canvases), filtered by ?q=
// (id or name) and ?status=.
func (c *Console) canvasesPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	list, err := c.b.Canvases(ctx)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	status := r.URL.Query().Get("status")
	data := canvasesData{Query: q, Status: status, Statuses: statuses, Total: len(list)}
	for _, ci := range list {
		row := canvasRow{CanvasInfo: ci, Status: statusOf(ci)}
		if status != "" && row.Status != status {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(ci.ID+" "+ci.Name), strings.ToLower(q)) {
			continue
		}
		if ci.Trigger == canvases.TriggerSchedule {
			if p, err := c.b.CanvasPlan(ctx, ci.ID, ""); err == nil {
				row.Fires = nextFires(p.Trigger.Schedule, c.now(), 3, c.zone)
			}
		}
		runs, err := c.b.Runs(ctx, ci.ID, 1)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		if len(runs) > 0 {
			row.LastRun = &runs[0]
			if rep, err := c.b.Report(ctx, ci.ID, runs[0].ID); err == nil {
				row.Funnel = funnelOf(rep)
			}
		}
		data.Rows = append(data.Rows, row)
	}
	v.Title, v.Data = tr(v.Lang, "Canvases"), data
	c.render(w, http.StatusOK, "canvases", v)
}

// nextFires is a schedule's next n fire times after now, in zone.
func nextFires(s *canvases.Schedule, now time.Time, n int, zone *time.Location) []time.Time {
	if s == nil {
		return nil
	}
	if s.At != "" {
		if at, err := time.Parse(time.RFC3339, s.At); err == nil && at.After(now) {
			return []time.Time{at.In(zone)}
		}
		return nil
	}
	loc, err := canvases.LoadLocation(s.Timezone)
	if err != nil {
		return nil
	}
	sched, err := canvases.CronParser.Parse(s.Cron)
	if err != nil {
		return nil
	}
	var end time.Time
	if s.End != "" {
		end, _ = time.Parse(time.RFC3339, s.End)
	}
	t := now.In(loc)
	if s.Start != "" {
		if start, err := time.Parse(time.RFC3339, s.Start); err == nil && start.After(t) {
			t = start.Add(-time.Second).In(loc)
		}
	}
	var out []time.Time
	for len(out) < n {
		t = sched.Next(t)
		if t.IsZero() || (!end.IsZero() && t.After(end)) {
			break
		}
		out = append(out, t.In(zone))
	}
	return out
}

type runRow struct {
	server.RunInfo
	Funnel *funnel
}

type stepDetail struct {
	*reports.StepReport
	Waiting int64
}

type canvasData struct {
	Canvas  server.CanvasInfo
	Status  string
	Plan    *canvases.Plan
	RunID   int64 // 0: every run
	Report  *reports.Report
	Graph   drawing
	Steps   []stepDetail
	Runs    []runRow
	Waiting int64
	// Versions are the canvas's deployments, newest first.
	Versions []store.CanvasVersion
}

// maxFunnels bounds the runs listed with their funnel on a canvas page
// (each is a report over that run's ledger rows).
const maxFunnels = 5

// canvasPage draws one canvas's flow with each step's counts, over every
// run or ?run=N.
func (c *Console) canvasPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	id := r.PathValue("id")
	info, ok, err := c.canvasInfo(r, id)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if !ok {
		c.fail(w, r, http.StatusNotFound, "no canvas "+strconv.Quote(id))
		return
	}
	var runID int64
	if s := r.URL.Query().Get("run"); s != "" {
		if runID, err = strconv.ParseInt(s, 10, 64); err != nil || runID <= 0 {
			c.fail(w, r, http.StatusBadRequest, "run must be a positive run id")
			return
		}
	}
	rep, err := c.b.Report(ctx, id, runID)
	if err != nil {
		if strings.Contains(err.Error(), "has no run") {
			c.fail(w, r, http.StatusNotFound, err.Error())
			return
		}
		c.failErr(w, r, err)
		return
	}
	runs, err := c.b.Runs(ctx, id, 100)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	// The plan the counts are of: the run's version, else the current one.
	planRef := ""
	for _, run := range runs {
		if run.ID == runID {
			planRef = run.Plan
		}
	}
	plan, err := c.b.CanvasPlan(ctx, id, planRef)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	// Users asleep before each step, in the runs still going.
	waiting := map[string]int64{}
	for _, run := range runs {
		if run.State != "running" || (runID != 0 && run.ID != runID) {
			continue
		}
		st, err := c.b.RunStatus(ctx, strconv.FormatInt(run.ID, 10))
		if err != nil {
			continue // finished meanwhile, or Temporal is busy: counts still show
		}
		for _, s := range st.Steps {
			waiting[s.StepID] += s.Waiting
		}
	}
	data := canvasData{Canvas: info, Status: statusOf(info), Plan: plan, RunID: runID, Report: rep}
	counts := map[string]*nodeCounts{}
	for _, s := range rep.Steps {
		counts[s.StepID] = &nodeCounts{Entered: s.Entered, Sent: s.Sent, Failed: total(s.Failed), Suppressed: total(s.Suppressed),
			Unknown: s.Unknown, Waiting: waiting[s.StepID], Converted: s.Converted}
		data.Steps = append(data.Steps, stepDetail{StepReport: s, Waiting: waiting[s.StepID]})
		data.Waiting += waiting[s.StepID]
	}
	data.Graph = layout(plan.Graph(), counts)
	// A report reads the run's whole ledger: the one above serves the run
	// it is of (or the only run), and only the newest runs get their own.
	known := map[int64]*reports.Report{}
	if runID > 0 {
		known[runID] = rep
	} else if len(runs) == 1 {
		known[runs[0].ID] = rep
	}
	for i, run := range runs {
		row := runRow{RunInfo: run}
		rr := known[run.ID]
		if rr == nil && i < maxFunnels {
			rr, _ = c.b.Report(ctx, id, run.ID)
		}
		if rr != nil {
			row.Funnel = funnelOf(rr)
		}
		data.Runs = append(data.Runs, row)
	}
	if data.Versions, err = c.b.CanvasVersions(ctx, id); err != nil {
		c.failErr(w, r, err)
		return
	}
	v.Title, v.Data = id, data
	c.render(w, http.StatusOK, "canvas", v)
}

// canvasInfo finds one canvas in the list.
func (c *Console) canvasInfo(r *http.Request, id string) (server.CanvasInfo, bool, error) {
	list, err := c.b.Canvases(r.Context())
	if err != nil {
		return server.CanvasInfo{}, false, err
	}
	i := slices.IndexFunc(list, func(ci server.CanvasInfo) bool { return ci.ID == id })
	if i < 0 {
		return server.CanvasInfo{}, false, nil
	}
	return list[i], true, nil
}

type runData struct {
	Run     server.RunStatus
	Canvas  server.CanvasInfo
	Waiting []workflows.Waiting
	Running bool
}

// runPage follows one run (by run number or workflow id): refreshing by
// itself while it runs, with pause/resume/stop for roles that may.
func (c *Console) runPage(w http.ResponseWriter, r *http.Request, v *view) {
	st, err := c.b.RunStatus(r.Context(), r.PathValue("id"))
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data := runData{Run: st, Running: st.Status == "Running"}
	if ws, ok := st.Waiting.([]workflows.Waiting); ok {
		data.Waiting = ws
	}
	if st.Canvas != "" {
		if info, ok, err := c.canvasInfo(r, st.Canvas); err == nil && ok {
			data.Canvas = info
		}
	}
	v.Title, v.Data = "run "+strconv.FormatInt(st.RunID, 10), data
	c.render(w, http.StatusOK, "run", v)
}

// control pauses, resumes or stops a canvas from a console form, through
// the same Backend calls (and audit) as the API, then goes back.
func (c *Console) control(action string) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, v *view) {
		do := map[string]func(*http.Request, string) (server.Controlled, error){
			"pause":  func(r *http.Request, id string) (server.Controlled, error) { return c.b.Pause(r.Context(), id) },
			"resume": func(r *http.Request, id string) (server.Controlled, error) { return c.b.Resume(r.Context(), id) },
			"stop":   func(r *http.Request, id string) (server.Controlled, error) { return c.b.Stop(r.Context(), id) },
		}[action]
		id := r.PathValue("id")
		if _, err := do(r, id); err != nil {
			if errors.Is(err, server.ErrConflict) {
				c.fail(w, r, http.StatusConflict, err.Error())
				return
			}
			c.failErr(w, r, err)
			return
		}
		next := r.PostFormValue("next")
		if next == "" {
			next = "/canvases/" + id
		}
		http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
	}
}
