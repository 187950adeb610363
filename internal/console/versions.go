package console

import (
	"context"
	"net/http"
	"strconv"

	"github.com/huabu/huabu/internal/store"
)

// VersionReader reads a canvas's version history.
type VersionReader interface {
	// CanvasVersions lists a canvas's deployments, newest first, without
	// their sources.
	CanvasVersions(ctx context.Context, canvasID string) ([]store.CanvasVersion, error)
	// CanvasVersion is one deployment with its YAML; server.ErrNotFound
	// when the canvas has no such deployment.
	CanvasVersion(ctx context.Context, canvasID string, id int64) (store.CanvasVersion, error)
}

type versionData struct {
	CanvasID string
	Version  store.CanvasVersion
	Lines    []diffLine // the source, numbered
	Previous int64      // the deployment before it, 0 if none
}

// versionPage shows the YAML one deployment of a canvas was compiled from
// (/canvases/{id}/versions/{n}).
func (c *Console) versionPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n <= 0 {
		c.fail(w, r, http.StatusBadRequest, "version must be a positive deployment number")
		return
	}
	ver, err := c.b.CanvasVersion(ctx, id, n)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	data := versionData{CanvasID: id, Version: ver, Lines: lineDiff(ver.Source, ver.Source)}
	if list, err := c.b.CanvasVersions(ctx, id); err == nil {
		for _, o := range list {
			if o.ID < n {
				data.Previous = o.ID
				break
			}
		}
	}
	v.Title, v.Data = id+" · v"+strconv.FormatInt(n, 10), data
	c.render(w, http.StatusOK, "version", v)
}

type diffData struct {
	CanvasID string
	A, B     store.CanvasVersion
	Lines    []diffLine
	Added    int
	Removed  int
}

// diffPage shows the line diff between two deployments of a canvas
// (/canvases/{id}/diff?a=N&b=M: what changed from a to b).
func (c *Console) diffPage(w http.ResponseWriter, r *http.Request, v *view) {
	ctx := r.Context()
	id := r.PathValue("id")
	var vers [2]store.CanvasVersion
	for i, field := range []string{"a", "b"} {
		n, err := strconv.ParseInt(r.URL.Query().Get(field), 10, 64)
		if err != nil || n <= 0 {
			c.fail(w, r, http.StatusBadRequest, field+" must be a positive deployment number")
			return
		}
		if vers[i], err = c.b.CanvasVersion(ctx, id, n); err != nil {
			c.failErr(w, r, err)
			return
		}
	}
	data := diffData{CanvasID: id, A: vers[0], B: vers[1], Lines: lineDiff(vers[0].Source, vers[1].Source)}
	for _, l := range data.Lines {
		switch l.Op {
		case "+":
			data.Added++
		case "-":
			data.Removed++
		}
	}
	v.Title, v.Data = id+" · diff", data
	c.render(w, http.StatusOK, "diff", v)
}
