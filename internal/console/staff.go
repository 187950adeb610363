package console

import (
	"context"
	"net/http"
	"strconv"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/store"
)

// StaffTaskPage is a page of the customers staff members still have to
// reach in open and overdue tasks, and the follow-ups the tasks sent.
type StaffTaskPage struct {
	Lines     []store.StaffTaskLine
	Next      string // cursor of the next page; "" at the end
	FollowUps store.StaffFollowUps
}

// StaffLister lists a canvas's open and overdue staff tasks one by one.
type StaffLister interface {
	// StaffTasks is the page after cursor after ("" the first) for a
	// canvas (runID 0: every run); a cursor it did not hand out is
	// server.ErrInvalid.
	StaffTasks(ctx context.Context, canvasID string, runID int64, after string) (StaffTaskPage, error)
}

type staffData struct {
	Canvases []string // canvases with staff_task steps
	Canvas   string
	By       string
	RunID    int64
	Report   *reports.StaffReport
	Tasks    StaffTaskPage
	After    string
}

// staffPage shows SOP completion of a canvas's staff tasks by grid or by
// staff member (what `huabu report CANVAS --staff --by grid` prints):
// /staff?canvas=ID&by=grid|staff[&run=N].
func (c *Console) staffPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	list, err := c.b.Canvases(ctx)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data := staffData{Canvas: r.URL.Query().Get("canvas"), By: r.URL.Query().Get("by")}
	for _, ci := range list {
		p, err := c.b.CanvasPlan(ctx, ci.ID, "")
		if err != nil {
			continue
		}
		for _, s := range p.Steps {
			if s.Kind == canvases.StepStaffTask {
				data.Canvases = append(data.Canvases, ci.ID)
				break
			}
		}
	}
	if data.By == "" {
		data.By = reports.ByGrid
	}
	if data.By != reports.ByGrid && data.By != reports.ByStaff {
		c.fail(w, r, http.StatusBadRequest, "by must be grid or staff")
		return
	}
	if s := r.URL.Query().Get("run"); s != "" {
		if data.RunID, err = strconv.ParseInt(s, 10, 64); err != nil || data.RunID <= 0 {
			c.fail(w, r, http.StatusBadRequest, "run must be a positive run id")
			return
		}
	}
	if data.Canvas == "" && len(data.Canvases) > 0 {
		data.Canvas = data.Canvases[0]
	}
	if data.Canvas != "" {
		if data.Report, err = c.b.StaffReport(ctx, data.Canvas, data.RunID, data.By); err != nil {
			c.failErr(w, r, err)
			return
		}
		data.After = r.URL.Query().Get("after")
		if data.Tasks, err = c.b.StaffTasks(ctx, data.Canvas, data.RunID, data.After); err != nil {
			c.failErr(w, r, err)
			return
		}
	}
	v.Title, v.Data = tr(v.Lang, "Staff"), data
	c.render(w, http.StatusOK, "staff", v)
}
