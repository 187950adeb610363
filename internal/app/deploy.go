package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/workflows"
)

// schedulePrefix names the Temporal Schedules Huabu owns.
const schedulePrefix = "huabu-"

// Deployed is what deploying one canvas did.
type Deployed struct {
	ID       string `json:"id"`
	Plan     string `json:"plan"`
	Changed  bool   `json:"changed"`
	Schedule string `json:"schedule,omitempty"` // created | updated | deleted
	Approval string `json:"approval,omitempty"` // approved | awaiting approval ("" when not required)
}

// DeployResult is the outcome of a deploy.
type DeployResult struct {
	Canvases []Deployed        `json:"canvases"`
	Removed  []string          `json:"removed,omitempty"`
	Problems canvases.Problems `json:"problems,omitempty"`
	// Stale: the worker's canvases directory is an older canvas set than
	// the newest one deployed, so nothing was deployed (ADR 022).
	Stale bool `json:"stale,omitempty"`
}

// ErrInvalidCanvases means a deploy was refused because a canvas has errors.
var ErrInvalidCanvases = errors.New("canvases have errors; nothing was deployed")

// DeployConfigured deploys the config's canvases directory.
func (app *App) DeployConfigured(ctx context.Context) (DeployResult, error) {
	src, dir := canvases.Source(canvases.Disk{}), app.cfg.Path(app.cfg.Canvases)
	if app.cfg.FS != nil {
		src, dir = canvases.FS{FS: app.cfg.FS}, strings.TrimPrefix(app.cfg.Canvases, "./")
	}
	files, problems, err := app.compiler.CompileAll(src, []string{dir})
	if err != nil {
		return DeployResult{}, fmt.Errorf("canvases: %w", err)
	}
	if problems.HasErrors() {
		return DeployResult{Problems: problems}, ErrInvalidCanvases
	}
	// Several workers start with the canvases directory each has (ADR 022):
	// the first to start with a new set deploys it whole (retiring what it
	// lacks); one with the newest set deploys it again, leaving alone what
	// was deployed since (huabu deploy) — no rollback, no retiring; one with
	// an older set deploys nothing.
	set, newest, created, err := app.store.ClaimCanvasSet(ctx, canvasSetDigest(files), len(files))
	if err != nil {
		return DeployResult{}, fmt.Errorf("canvas set: %w", err)
	}
	if created {
		return app.Deploy(ctx, files, problems, true)
	}
	if set.Digest != newest.Digest {
		app.log.Warn("this worker's canvases directory is an older canvas set than the newest deployed; deploying nothing at start, so newer canvases are neither rolled back nor retired (deploy it on purpose with huabu deploy)",
			"directory", dir, "set", set.Seq, "first_deployed", set.FirstAt.Format(time.RFC3339), "newest_set", newest.Seq, "newest_first_deployed", newest.FirstAt.Format(time.RFC3339))
		return DeployResult{Problems: problems, Stale: true}, nil
	}
	kept := files[:0:0]
	for _, f := range files {
		newer, err := app.deployedSince(ctx, f.Plan, set.FirstAt)
		if err != nil {
			return DeployResult{}, err
		}
		if newer {
			app.log.Info("canvas left as deployed: a newer version than this worker's file was deployed since", "canvas", f.Plan.ID, "file", f.Path)
			continue
		}
		kept = append(kept, f)
	}
	return app.Deploy(ctx, kept, problems, false)
}

// canvasSetDigest names a set of canvases by their ids and plan hashes.
func canvasSetDigest(files []canvases.File) string {
	lines := make([]string, len(files))
	for i, f := range files {
		lines[i] = f.Plan.ID + "\x00" + f.Plan.Hash
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

// deployedSince reports whether the canvas's current version in the store
// is not p and was deployed after the canvas set that has p was first
// deployed: someone deployed it on purpose since (huabu deploy, the
// console) — a newer version or a rollback to an older one — and a worker
// restarting with the set must not undo that. (When each version was first
// stored says nothing about which one the operator chose last.)
func (app *App) deployedSince(ctx context.Context, p *canvases.Plan, setFirstDeployed time.Time) (bool, error) {
	cur, err := app.store.Canvas(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || cur.PlanHash == p.Hash {
		return false, err
	}
	return cur.DeployedAt.After(setFirstDeployed), nil
}

// Deploy stores new plan versions and brings Temporal Schedules in line.
// It is all or nothing: if any file has an error, nothing changes. With
// complete, canvases not in files are retired (their schedules deleted).
func (app *App) Deploy(ctx context.Context, files []canvases.File, problems canvases.Problems, complete bool) (DeployResult, error) {
	res := DeployResult{Problems: problems}
	if problems.HasErrors() {
		return res, ErrInvalidCanvases
	}
	keep := map[string]bool{}
	for _, f := range files {
		p := f.Plan
		keep[p.ID] = true
		changed, err := app.store.SavePlan(ctx, p.ID, p.Hash, p.JSON(), f.Path)
		if err != nil {
			return res, err
		}
		if err := app.store.RecordAuthor(ctx, p.ID, p.Hash, auth.ActorFrom(ctx).Name); err != nil {
			return res, err
		}
		if err := app.store.RecordCanvasVersion(ctx, store.CanvasVersion{CanvasID: p.ID, PlanHash: p.Hash, Path: app.shownPath(f.Path), Source: string(f.Source), Author: auth.ActorFrom(ctx).Name}, changed); err != nil {
			return res, err
		}
		action, err := app.syncSchedule(ctx, p)
		if err != nil {
			return res, fmt.Errorf("canvas %s: schedule: %w", p.ID, err)
		}
		approval, _, err := app.approvalState(ctx, p.ID, p)
		if err != nil {
			return res, err
		}
		if err := app.syncHold(ctx, p.ID); err != nil {
			return res, fmt.Errorf("canvas %s: schedule: %w", p.ID, err)
		}
		if changed {
			app.audit(ctx, "deploy", p.ID, p.Hash, map[string]any{"source": f.Path, "schedule": action, "approval": approval})
		}
		res.Canvases = append(res.Canvases, Deployed{ID: p.ID, Plan: p.ShortHash(), Changed: changed, Schedule: action, Approval: approval})
	}
	if r := app.currentRouter(); r != nil {
		defer func() { _ = r.Refresh(ctx) }()
	}
	if !complete {
		return res, nil
	}
	deployed, err := app.store.Canvases(ctx)
	if err != nil {
		return res, err
	}
	for _, c := range deployed {
		if keep[c.ID] || !c.Active {
			continue
		}
		if err := app.store.DeactivateCanvas(ctx, c.ID); err != nil {
			return res, err
		}
		if err := app.deleteSchedule(ctx, c.ID); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, c.ID)
	}
	return res, nil
}

// syncSchedule creates or updates the Temporal Schedule of a scheduled
// canvas, or deletes one left from an earlier version with another trigger.
func (app *App) syncSchedule(ctx context.Context, p *canvases.Plan) (string, error) {
	if p.Trigger.Kind != canvases.TriggerSchedule {
		if err := app.deleteSchedule(ctx, p.ID); err != nil {
			return "", err
		}
		return "", nil
	}
	spec, remaining, err := scheduleSpec(p.Trigger.Schedule)
	if err != nil {
		return "", err
	}
	action := &client.ScheduleWorkflowAction{
		ID:        fmt.Sprintf("huabu-%s-scheduled", p.ID),
		Workflow:  workflows.RunName,
		Args:      []any{workflows.RunInput{CanvasID: p.ID, PlanHash: p.Hash, Trigger: canvases.TriggerSchedule}},
		TaskQueue: app.cfg.Temporal.TaskQueue,
	}
	sc := app.client.ScheduleClient()
	_, err = sc.Create(ctx, client.ScheduleOptions{
		ID:               schedulePrefix + p.ID,
		Spec:             *spec,
		Action:           action,
		Overlap:          overlapPolicy(p.Trigger.Schedule),
		CatchupWindow:    10 * time.Minute,
		RemainingActions: remaining,
		Memo:             map[string]any{"plan": p.Hash},
	})
	if err == nil {
		return "created", nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		var exists *serviceerror.WorkflowExecutionAlreadyStarted
		if !errors.As(err, &exists) {
			return "", err
		}
	}
	h := sc.GetHandle(ctx, schedulePrefix+p.ID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec, s.Action = spec, action
			if s.Policy != nil {
				s.Policy.Overlap = overlapPolicy(p.Trigger.Schedule)
			}
			if s.State != nil {
				s.State.LimitedActions = remaining > 0
				s.State.RemainingActions = remaining
			}
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return "", err
	}
	return "updated", nil
}

// overlapPolicy is the Temporal overlap policy of a schedule trigger. Allow
// by default: each scheduled run is a cohort of its own, so a daily canvas
// with a wait of a day or more must not skip every other day.
func overlapPolicy(s *canvases.Schedule) enums.ScheduleOverlapPolicy {
	switch s.OverlapPolicy() {
	case canvases.OverlapSkip:
		return enums.SCHEDULE_OVERLAP_POLICY_SKIP
	case canvases.OverlapBufferOne:
		return enums.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
	}
	return enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
}

// scheduleSpec turns a schedule trigger into a Temporal spec. A one-time
// `at` is a calendar entry in UTC with one remaining action.
func scheduleSpec(s *canvases.Schedule) (*client.ScheduleSpec, int, error) {
	spec := &client.ScheduleSpec{TimeZoneName: s.Timezone}
	if s.Start != "" {
		spec.StartAt, _ = time.Parse(time.RFC3339, s.Start)
	}
	if s.End != "" {
		spec.EndAt, _ = time.Parse(time.RFC3339, s.End)
	}
	if s.Cron != "" {
		spec.CronExpressions = []string{s.Cron}
		return spec, 0, nil
	}
	at, err := time.Parse(time.RFC3339, s.At)
	if err != nil {
		return nil, 0, err
	}
	at = at.UTC()
	r := func(v int) []client.ScheduleRange { return []client.ScheduleRange{{Start: v}} }
	spec.TimeZoneName = "UTC"
	spec.Calendars = []client.ScheduleCalendarSpec{{
		Second: r(at.Second()), Minute: r(at.Minute()), Hour: r(at.Hour()),
		DayOfMonth: r(at.Day()), Month: r(int(at.Month())), Year: r(at.Year()),
		DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}},
	}}
	return spec, 1, nil
}

func (app *App) deleteSchedule(ctx context.Context, canvasID string) error {
	err := app.client.ScheduleClient().GetHandle(ctx, schedulePrefix+canvasID).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return err
	}
	return nil
}

// TriggerSchedule runs a scheduled canvas now, through its Schedule.
func (app *App) TriggerSchedule(ctx context.Context, canvasID string) error {
	return app.client.ScheduleClient().GetHandle(ctx, schedulePrefix+canvasID).Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL})
}

// shownPath is a canvas file's path as the version history shows it:
// relative to the config's directory when it is inside it.
func (app *App) shownPath(path string) string {
	if app.cfg.Dir == "" || !filepath.IsAbs(path) {
		return path
	}
	if rel, err := filepath.Rel(app.cfg.Dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
