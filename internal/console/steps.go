package console

import (
	"context"
	"net/http"
	"strconv"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// RecipientPage is one page of the users who reached a step of a run.
type RecipientPage struct {
	RunID      int64
	Recipients []store.StepRecipient
	// Next is the cursor of the following page; "" when none follows.
	Next string
}

// StepSampler pages through the users who reached a step.
type StepSampler interface {
	// StepRecipients is the page after cursor after ("" the first) of the
	// users who reached a step in a run of a canvas — the newest run for
	// runID 0. A cursor it did not hand out is server.ErrInvalid.
	StepRecipients(ctx context.Context, canvasID string, runID int64, stepID, after string) (RecipientPage, error)
}

type stepData struct {
	CanvasID string
	Step     *canvases.Step
	Page     RecipientPage
	After    string
	RunID    int64 // as asked: 0 is the newest run
}

// stepPage lists a sample of the users who reached a step, with their
// outcome there, a page at a time (/canvases/{id}/steps/{step}?run=N&after=C):
// clicking a node of the flow leads here from the step's row.
func (c *Console) stepPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	id, stepID := r.PathValue("id"), r.PathValue("step")
	data := stepData{CanvasID: id, After: r.URL.Query().Get("after")}
	if s := r.URL.Query().Get("run"); s != "" {
		var err error
		if data.RunID, err = strconv.ParseInt(s, 10, 64); err != nil || data.RunID <= 0 {
			c.fail(w, r, http.StatusBadRequest, "run must be a positive run id")
			return
		}
	}
	page, err := c.b.StepRecipients(ctx, id, data.RunID, stepID, data.After)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data.Page = page
	// The step as the run's plan version has it.
	ref := ""
	if runs, err := c.b.Runs(ctx, id, 100); err == nil {
		for _, run := range runs {
			if run.ID == page.RunID {
				ref = run.Plan
			}
		}
	}
	p, err := c.b.CanvasPlan(ctx, id, ref)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if data.Step = p.Step(stepID); data.Step == nil {
		c.fail(w, r, http.StatusNotFound, "canvas "+strconv.Quote(id)+" has no step "+strconv.Quote(stepID))
		return
	}
	v.Title, v.Data = id+" · "+stepID, data
	c.render(w, http.StatusOK, "step", v)
}
