package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
)

// openStore opens the store of the config and --data to write to it (the
// bulk paths: import, run --profiles, sync; ADR 013). When a Huabu is
// running at the config's address, the store must be the one it uses:
// otherwise the rows would land where nothing reads them.
func (c *cli) openStore(ctx context.Context) (*store.SQLite, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	path := app.StoreName(cfg, c.dataDir)
	api, err := c.api()
	if err != nil {
		return nil, err
	}
	api.http.Timeout = 3 * time.Second
	var running server.Status
	err = api.call(ctx, "GET", "/api/v1/status", nil, &running)
	switch {
	case errors.As(err, new(errNotRunning)):
		// Nobody to disagree with: the next `huabu dev` opens this store.
	case err != nil:
		fmt.Fprintf(c.stderr, "huabu: could not ask the running Huabu which store it uses (%v); writing %s\n", err, path)
	case cfg.Store.Driver == "postgres":
		// A database server, not a file: the store id below tells.
	default:
		if _, serr := os.Stat(path); serr != nil {
			return nil, userErrorf("the Huabu running at %s (pid %d) uses another store: there is none at %s.\nPass the --data (and -c) it was started with", api.base, running.PID, path)
		}
	}
	st, err := app.OpenStore(ctx, cfg, c.dataDir)
	if err != nil || running.StoreID == "" {
		return st, err
	}
	id, err := st.StoreID(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if id != running.StoreID {
		st.Close()
		return nil, userErrorf("the Huabu running at %s (pid %d) uses another store than %s.\nPass the --data (and -c) it was started with", api.base, running.PID, path)
	}
	return st, nil
}

func (c *cli) deployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy [PATH...]",
		Short: "Validate canvases and deploy them (new versions, schedules) to the running Huabu",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, comp, err := c.compiler()
			if err != nil {
				return err
			}
			src := canvases.Source(canvases.Disk{})
			if len(args) == 0 {
				var dir string
				src, dir = canvasSource(cfg)
				args = []string{dir}
			}
			files, problems, err := comp.CompileAll(src, args)
			if err != nil {
				return userError{err}
			}
			for _, p := range problems {
				fmt.Fprintln(c.stdout, p.String())
			}
			if problems.HasErrors() {
				return silentFailure
			}
			body := map[string]map[string]string{"files": {}}
			for _, f := range files {
				data, err := src.ReadFile(f.Path)
				if err != nil {
					return err
				}
				body["files"][f.Path] = string(data)
			}
			var out server.DeployOutcome
			if err := newAPIClient(cfg, c.apiAddr, c.bearerToken()).call(cmd.Context(), "POST", "/api/v1/deploy", body, &out); err != nil {
				return err
			}
			for _, d := range out.Canvases {
				state := "unchanged"
				if d.Changed {
					state = "new version"
				}
				line := fmt.Sprintf("%-24s %s  %s", d.ID, d.Plan, state)
				if d.Schedule != "" {
					line += "  schedule " + d.Schedule
				}
				if d.Approval != "" {
					line += "  " + d.Approval
				}
				fmt.Fprintln(c.stdout, line)
			}
			return nil
		},
	}
	return cmd
}

func (c *cli) runCmd() *cobra.Command {
	var profiles string
	var users []string
	var wait, yes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "run CANVAS",
		Short: "Start a run now for a manual or scheduled canvas (with --profiles or --users, for just those users)",
		Long: `Start a run of a deployed canvas now, for its whole audience, or with --profiles FILE
(imported first) or --users ID,... for just those users.

An event-triggered canvas (trigger: event) is refused without --profiles or --users: its
audience says who may enter when the event happens, not who should get the message now.

A run that would enter more users than the config's run.confirm_above (default 1000) asks
first, showing the estimate (huabu estimate CANVAS); --yes starts it without asking.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			api, err := c.api()
			if err != nil {
				return err
			}
			canvas, err := c.deployedCanvas(ctx, api, args[0])
			if err != nil {
				return err
			}
			if canvas.Trigger == canvases.TriggerEvent && profiles == "" && len(users) == 0 {
				return userErrorf("%s starts when %s happens; a run now would send to everyone in its audience, not to those who did it.\n"+
					"Name the users it is for: huabu run %s --users ID,... or --profiles FILE", canvas.ID, canvas.Event, canvas.ID)
			}
			body := map[string]any{}
			ids := append([]string(nil), users...)
			if profiles != "" {
				imported, err := c.importForRun(ctx, profiles)
				if err != nil {
					return err
				}
				ids = append(ids, imported...)
			}
			if ids != nil {
				body["user_ids"] = ids
			}
			if !yes {
				if err := c.confirmRun(ctx, api, canvas, ids); err != nil {
					return err
				}
			}
			var started server.RunStarted
			if err := api.call(ctx, "POST", "/api/v1/canvases/"+args[0]+"/runs", body, &started); err != nil {
				return err
			}
			loc, err := c.zone()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(timeout)
			if !wait {
				// Wait only until the run is recorded, so that a report read
				// right after this shows it.
				deadline = time.Now().Add(10 * time.Second)
			}
			for {
				var st server.RunStatus
				if err := api.call(ctx, "GET", "/api/v1/runs/"+url.PathEscape(started.WorkflowID), nil, &st); err != nil {
					return err
				}
				switch {
				case !wait && st.RunID > 0:
					fmt.Fprintf(c.stdout, "started %s (run %d, plan %.12s); it goes on in the background:\n  huabu runs --id %d   its progress, step by step\n  huabu report %s --run %d   its counts so far\n",
						started.WorkflowID, st.RunID, started.Plan, st.RunID, args[0], st.RunID)
					return nil
				case st.Status == "Running" && wait && st.Active == 0 && st.Waiting != nil:
					fmt.Fprintf(c.stdout, "run %d is waiting (nothing more to do until then): %s\n", st.RunID, statsLine(st))
					c.writeWaits(st.Waiting, loc)
					return c.writeRunSteps(st)
				case st.Status == "Completed":
					fmt.Fprintf(c.stdout, "run %d completed: %s\n", st.RunID, statsLine(st))
					if st.RunID == 0 || len(st.Steps) > 0 && st.Steps[0].Entered == 0 && ids == nil {
						fmt.Fprintf(c.stdout, "  nobody is in the audience of %s now; `huabu run %s --profiles FILE` (or --users) runs it for those users\n", args[0], args[0])
					}
					return c.writeRunSteps(st)
				case st.Status != "Running":
					return fmt.Errorf("run %s ended %s", started.WorkflowID, st.Status)
				}
				if time.Now().After(deadline) {
					if !wait {
						fmt.Fprintf(c.stdout, "started %s (plan %.12s); it goes on in the background (huabu runs %s lists it)\n", started.WorkflowID, started.Plan, args[0])
						return nil
					}
					return userErrorf("run %s still running after %s (it carries on; huabu runs --id %s shows how far it is)", started.WorkflowID, timeout, started.WorkflowID)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(300 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().StringVar(&profiles, "profiles", "", "JSONL or CSV of profiles: imported, then the run is for just them")
	cmd.Flags().StringSliceVar(&users, "users", nil, "user ids (comma-separated): the run is for just them")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "start without asking, however many users it enters")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish (runs with long waits keep going)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return cmd
}

// confirmRun asks before a run that would enter more users than
// run.confirm_above: on a terminal it asks, elsewhere it refuses (--yes).
func (c *cli) confirmRun(ctx context.Context, api *apiClient, canvas server.CanvasInfo, ids []string) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	limit := cfg.Run.ConfirmAboveOrDefault()
	if limit == 0 {
		return nil
	}
	n, about := int64(len(ids)), ""
	if ids == nil {
		var est struct {
			Exact    bool `json:"exact"`
			Entering struct {
				N      int64 `json:"n"`
				Margin int64 `json:"margin"`
			} `json:"entering"`
		}
		if err := api.call(ctx, "GET", "/api/v1/canvases/"+url.PathEscape(canvas.ID)+"/estimate", nil, &est); err != nil {
			return userErrorf("could not estimate how many users %s would enter (%v); pass --yes to start it anyway", canvas.ID, err)
		}
		n = est.Entering.N
		if !est.Exact && est.Entering.Margin > 0 {
			about = fmt.Sprintf("about %d (±%d)", n, est.Entering.Margin)
		}
		if n+est.Entering.Margin <= int64(limit) {
			return nil
		}
	} else if n <= int64(limit) {
		return nil
	}
	if about == "" {
		about = fmt.Sprint(n)
	}
	question := fmt.Sprintf("%s would enter %s users, more than run.confirm_above (%d)", canvas.ID, about, limit)
	if !isTerminal(c.stdin) {
		return userErrorf("%s: pass --yes to start it", question)
	}
	fmt.Fprintf(c.stderr, "%s. Start it? [y/N] ", question)
	answer, _ := bufio.NewReader(c.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return userErrorf("not started")
	}
	return nil
}

// statsLine is a run's totals as JSON (entered, sent, ...), as scripts read it.
func statsLine(st server.RunStatus) string {
	b, _ := json.Marshal(st.Stats)
	return string(b)
}

// writeRunSteps prints a run's steps, when the server sent them.
func (c *cli) writeRunSteps(st server.RunStatus) error {
	if len(st.Steps) == 0 {
		return nil
	}
	steps := make([]*reports.StepReport, len(st.Steps))
	for i := range st.Steps {
		steps[i] = st.Steps[i].StepReport
	}
	fmt.Fprintln(c.stdout)
	return reports.WriteSteps(c.stdout, st.Canvas, steps)
}

// deployedCanvas finds a canvas the running Huabu has deployed.
func (c *cli) deployedCanvas(ctx context.Context, api *apiClient, id string) (server.CanvasInfo, error) {
	var list struct {
		Canvases []server.CanvasInfo `json:"canvases"`
	}
	if err := api.call(ctx, "GET", "/api/v1/canvases", nil, &list); err != nil {
		return server.CanvasInfo{}, err
	}
	var ids []string
	for _, ci := range list.Canvases {
		if ci.ID == id && ci.Active {
			return ci, nil
		}
		ids = append(ids, ci.ID)
	}
	msg := fmt.Sprintf("no deployed canvas %q", id)
	if s := canvases.Suggest(id, ids); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if len(ids) > 0 {
		msg += "; deployed: " + strings.Join(ids, ", ")
	}
	return server.CanvasInfo{}, userErrorf("%s", msg)
}

// importForRun imports a profiles file and returns its user ids.
func (c *cli) importForRun(ctx context.Context, path string) ([]string, error) {
	st, err := c.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cfg, _ := c.loadConfig()
	schema, _ := cfg.Schema()
	rec := &idRecorder{ProfileStore: st}
	f, err := os.Open(path)
	if err != nil {
		return nil, userError{err}
	}
	defer f.Close()
	sum, err := ingest.ImportProfiles(ctx, rec, schema, f, ingest.Options{})
	for _, r := range sum.Rejected {
		fmt.Fprintf(c.stderr, "%s:%s\n", path, r)
	}
	if err != nil {
		return nil, err
	}
	return rec.ids, nil
}

// idRecorder remembers which profiles an import wrote.
type idRecorder struct {
	ingest.ProfileStore
	ids []string
}

func (r *idRecorder) UpsertProfiles(ctx context.Context, updates []store.ProfileUpdate) (int, error) {
	for _, u := range updates {
		r.ids = append(r.ids, u.ID)
	}
	return r.ProfileStore.UpsertProfiles(ctx, updates)
}

func (c *cli) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import profiles|events|staff FILE",
		Short: "Load profiles (JSONL identify payloads or CSV), events (JSONL track payloads) or the staff directory into the store",
		Long: `Load a file into the store of the config (and --data), as huabu dev uses it; the running
Huabu may keep running. Rejected lines are listed with their line numbers, the others are
imported (re-running an import stores nothing twice). On a terminal, progress is shown.

profiles: JSONL identify payloads ({"userId": "u1", "traits": {...}}) or CSV with a user_id column.
events:   JSONL track payloads ({"userId", "event", "properties", "timestamp", optional "messageId"});
          history: the events start no journeys, and the computed traits, RFM scores and
          auto-tags of the users they name are recomputed after the import.
staff:    JSONL or CSV with userid, name, grid, leader.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			kind, path := args[0], args[1]
			if kind != "profiles" && kind != "events" && kind != "staff" {
				return userErrorf("import %q: use profiles, events or staff", kind)
			}
			f, err := os.Open(path)
			if err != nil {
				return userError{err}
			}
			defer f.Close()
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			opts := ingest.Options{}
			if isTerminal(c.stderr) {
				start := time.Now()
				opts.Progress = func(rows int) {
					fmt.Fprintf(c.stderr, "\r%d rows  %.0f/s ", rows, float64(rows)/time.Since(start).Seconds())
				}
			}
			var sum ingest.Summary
			extra := ""
			switch kind {
			case "staff":
				sum, err = ingest.ImportStaff(ctx, st, f)
			case "profiles":
				schema, serr := cfg.Schema()
				if serr != nil {
					return userError{serr}
				}
				sum, err = ingest.ImportProfiles(ctx, st, schema, f, opts)
			case "events":
				schema, serr := cfg.Schema()
				if serr != nil {
					return userError{serr}
				}
				var es ingest.EventSummary
				es, err = ingest.ImportEvents(ctx, st, ingest.NewValidator(schema), f, opts)
				sum = es.Summary
				extra = fmt.Sprintf(", %d already imported", es.Duplicates)
			}
			if opts.Progress != nil && kind != "staff" {
				fmt.Fprintln(c.stderr)
			}
			for _, r := range sum.Rejected {
				fmt.Fprintf(c.stdout, "%s:%s\n", path, r)
			}
			fmt.Fprintf(c.stdout, "imported %d %s in %s (%.0f/s)%s, %d rejected\n", sum.Imported, kind, sum.Elapsed.Round(time.Millisecond), sum.Rate(), extra, len(sum.Rejected))
			if kind == "events" && sum.Imported > 0 {
				// Even after ErrTooManyRejects: what was imported is stored.
				if terr := c.recomputeTraits(ctx, cfg, st); terr != nil && err == nil {
					err = terr
				}
			}
			if err != nil {
				if errors.Is(err, ingest.ErrTooManyRejects) {
					return userError{err}
				}
				return err
			}
			if len(sum.Rejected) > 0 {
				return silentFailure
			}
			return nil
		},
	}
	return cmd
}

// recomputeTraits brings the computed traits, RFM scores and auto-tags of
// the users an event import touched up to date (the import marked them due).
func (c *cli) recomputeTraits(ctx context.Context, cfg *config.Config, st *store.SQLite) error {
	eng, err := traits.New(cfg, st, slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return userError{err}
	}
	if !eng.Enabled() {
		return nil
	}
	start := time.Now()
	if err := eng.Sync(ctx); err != nil {
		return err
	}
	n, err := eng.RefreshDue(ctx)
	if err != nil {
		return fmt.Errorf("recomputing traits: %w", err)
	}
	if err := eng.RefreshRFM(ctx); err != nil {
		return fmt.Errorf("recomputing RFM scores: %w", err)
	}
	fmt.Fprintf(c.stdout, "recomputed the traits of %d profiles in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// summary is a one-line view of a message.
func summary(m canvases.Message) string {
	parts := []string{}
	for _, s := range []string{m.Title, m.Subject, m.Text, m.Markdown} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if m.Template != "" {
		b, _ := json.Marshal(m.Params)
		parts = append(parts, "template "+m.Template+" "+string(b))
	}
	if len(m.Attachments) > 0 {
		parts = append(parts, fmt.Sprintf("+%d attachment(s)", len(m.Attachments)))
	}
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += " | "
		}
		out += p
	}
	return out
}
