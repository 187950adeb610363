package console

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/estimate"
	"github.com/huabu/huabu/internal/server"
)

// Editor is what the editor page needs: the running Huabu's compiler (its
// profile schema and channels) and the API's deploy.
type Editor interface {
	// Check compiles a canvas source as a deploy would, sending nothing.
	Check(ctx context.Context, file string, src []byte) (*canvases.Plan, canvases.Problems)
	DeploySources(ctx context.Context, files map[string][]byte) (server.DeployOutcome, error)
	// EstimateSource is the audience estimate of a canvas not deployed.
	EstimateSource(ctx context.Context, file string, src []byte, opts estimate.Options) (*estimate.Result, canvases.Problems, error)
}

// maxSource bounds a canvas pasted into the editor.
const maxSource = 1 << 20

type editorData struct {
	File     string
	Source   string
	Checked  bool
	Problems canvases.Problems
	Errors   int
	Graph    *drawing
	Plan     *canvases.Plan
	Deployed *server.DeployOutcome
	Estimate *estimate.Result
	Sample   []estimate.SampleUser // the first ten of the estimate's sample
}

// editorPage shows an empty editor (GET /editor).
func (c *Console) editorPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title, v.Data = tr(v.Lang, "Editor"), editorData{File: "canvas.yaml"}
	c.render(w, http.StatusOK, "editor", v)
}

// editorCheck validates the posted source (POST /editor), marking each
// problem at its line and column and drawing the flow; with action=deploy
// it deploys it as a new version (a draft where approval is required) for
// roles that may. The page's script posts here as the operator types.
func (c *Console) editorCheck(w http.ResponseWriter, r *http.Request, v *view) {
	src := r.PostFormValue("source")
	if len(src) > maxSource {
		c.fail(w, r, http.StatusRequestEntityTooLarge, "the canvas is larger than 1 MB")
		return
	}
	file := strings.TrimSpace(r.PostFormValue("file"))
	if file == "" || strings.ContainsAny(file, "/\\") {
		file = "canvas.yaml"
	}
	data := editorData{File: file, Source: src, Checked: true}
	plan, problems := c.b.Check(r.Context(), file, []byte(src))
	data.Problems, data.Plan = problems, plan
	for _, p := range problems {
		if p.Severity == canvases.Error {
			data.Errors++
		}
	}
	if plan != nil {
		g := layout(plan.Graph(), nil)
		data.Graph = &g
	}
	code := http.StatusOK
	// The estimate reads the store (within ~0.8 s): asked for, not as one types.
	if r.PostFormValue("action") == "estimate" && data.Errors == 0 {
		res, _, err := c.b.EstimateSource(r.Context(), file, []byte(src), estimate.Options{})
		if err != nil && !errors.Is(err, server.ErrInvalid) {
			c.failErr(w, r, err)
			return
		}
		data.Estimate = res
		if res != nil {
			data.Sample = res.Sample[:min(10, len(res.Sample))]
		}
	}
	if r.PostFormValue("action") == "deploy" {
		if !v.Actor.Role.Can(auth.Deploy) {
			c.fail(w, r, http.StatusForbidden, "token "+v.Actor.Name+" (role "+string(v.Actor.Role)+") may not deploy: it needs the deploy permission")
			return
		}
		if data.Errors == 0 {
			out, err := c.b.DeploySources(r.Context(), map[string][]byte{file: []byte(src)})
			if err != nil && !errors.Is(err, server.ErrInvalid) {
				c.failErr(w, r, err)
				return
			}
			data.Deployed = &out
		} else {
			code = http.StatusUnprocessableEntity
		}
	}
	v.Title, v.Data = tr(v.Lang, "Editor"), data
	c.render(w, code, "editor", v)
}
