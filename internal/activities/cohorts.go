package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// CohortStore keeps cohorts: their pages of members, who entered and who
// left (Enter, Partition, Send's fallbacks, Exit, Subtract, Union, the
// waits' children).
type CohortStore interface {
	CreateCohort(ctx context.Context, key string, runID int64, stepID string, parentID int64, wakeAt time.Time) (store.Cohort, error)
	GetCohort(ctx context.Context, id int64) (store.Cohort, error)
	WriteEntryChunk(ctx context.Context, cohortID int64, chunk store.EntryChunk) error
	WritePages(ctx context.Context, cohortID int64, pages []store.Page) error
	SealCohort(ctx context.Context, cohortID, span int64) (store.Cohort, error)
	Pages(ctx context.Context, cohortID, from, to int64) ([]store.Page, error)
	RecordCohortExit(ctx context.Context, runID int64, stepID string, cohortID int64, reason string, count int64) error
	ExitedAmong(ctx context.Context, runID int64, uids []int64) (map[int64]bool, error)
	LastEntries(ctx context.Context, canvasID string, exceptRun int64, uids []int64) (map[int64]time.Time, error)
}

// StepInput names a cohort at a step.
type StepInput struct {
	RunID    int64     `json:"run_id"`
	CanvasID string    `json:"canvas_id"`
	PlanHash string    `json:"plan_hash"`
	StepID   string    `json:"step_id"`
	Cohort   CohortRef `json:"cohort"`
	// Now is the workflow's time when the step started, so a retried
	// activity computes the same wake times.
	Now time.Time `json:"now,omitzero"`
	// Visit counts the cohort's earlier visits to this step (a loop), so
	// each visit has its own ledger rows and child cohorts.
	Visit int `json:"visit,omitempty"`
}

// visitKey suffixes a cohort key on visits after the first, so a cohort
// that comes back to a step (a loop) makes new children; first visits keep
// the keys runs recorded before loops were counted.
func visitKey(visit int) string {
	if visit == 0 {
		return ""
	}
	return fmt.Sprintf("/v%d", visit)
}

type pageCursor struct {
	NextPage int64            `json:"next_page"`
	Count    int64            `json:"count"`
	Buckets  map[string]int64 `json:"buckets,omitempty"` // wake time → child cohort (until)
}

// eachPage calls fn for the cohort's pages from the heartbeat cursor on,
// leaving out members who already left the run, and heartbeats after each.
func (a *Activities) eachPage(ctx context.Context, cp *compiledPlan, in StepInput, cur *pageCursor, fn func(store.Page) error) error {
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, cur)
	}
	for cur.NextPage < in.Cohort.PageSpan {
		to := min(cur.NextPage+16, in.Cohort.PageSpan)
		pages, err := a.Store.Pages(ctx, in.Cohort.ID, cur.NextPage, to)
		if err != nil {
			return err
		}
		for _, p := range pages {
			if cp.exitEvents {
				exited, err := a.Store.ExitedAmong(ctx, in.RunID, p.Members)
				if err != nil {
					return err
				}
				if len(exited) > 0 {
					p.Members = slices.DeleteFunc(slices.Clone(p.Members), func(u int64) bool { return exited[u] })
				}
			}
			if err := fn(p); err != nil {
				return err
			}
			cur.NextPage = p.No + 1
			activity.RecordHeartbeat(ctx, *cur)
		}
		cur.NextPage = max(cur.NextPage, to)
	}
	return nil
}

func (a *Activities) planStep(ctx context.Context, in StepInput) (*compiledPlan, *canvases.Step, error) {
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return nil, nil, err
	}
	step := cp.plan.Step(in.StepID)
	if step == nil {
		return nil, nil, temporal.NewNonRetryableApplicationError("no step "+in.StepID, "PlanMismatch", nil)
	}
	return cp, step, nil
}

// Partition divides a cohort among a branch's arms, a split's arms, or the
// wake times of a wait until a time of day. Child cohorts reuse the parent's
// page numbers, so each parent page is processed once and idempotently.
func (a *Activities) Partition(ctx context.Context, in StepInput) ([]CohortRef, error) {
	cp, step, err := a.planStep(ctx, in)
	if err != nil {
		return nil, err
	}
	var cur pageCursor
	switch {
	case step.Kind == canvases.StepBranch || step.Kind == canvases.StepSplit:
		arms := len(step.Branch) + len(step.Split)
		children := make([]int64, arms)
		for i := range children {
			c, err := a.Store.CreateCohort(ctx, fmt.Sprintf("%d/%s/%d/arm%d%s", in.RunID, step.ID, in.Cohort.ID, i, visitKey(in.Visit)), in.RunID, step.ID, in.Cohort.ID, time.Time{})
			if err != nil {
				return nil, err
			}
			children[i] = c.ID
		}
		err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
			byArm, err := a.assign(ctx, cp, step, in, p.Members)
			if err != nil {
				return err
			}
			// Every arm's page is written, empty ones too (which deletes
			// them): an earlier attempt may have put a member on another arm.
			for i, members := range byArm {
				if err := a.Store.WritePages(ctx, children[i], []store.Page{{No: p.No, Members: members}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return a.seal(ctx, children, in.Cohort.PageSpan)
	case step.Kind == canvases.StepWait && step.Wait.Kind == canvases.WaitUntil:
		cur.Buckets = map[string]int64{}
		err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
			byWake, err := a.wakeTimes(ctx, step.Wait, in.Now, p.Members)
			if err != nil {
				return err
			}
			// A bucket an earlier attempt filled from this page and this one
			// does not (a user changed time zone in between) loses the page.
			for _, wake := range sortedKeys(cur.Buckets) {
				if _, ok := byWake[wake]; !ok {
					if err := a.Store.WritePages(ctx, cur.Buckets[wake], []store.Page{{No: p.No}}); err != nil {
						return err
					}
				}
			}
			for _, wake := range sortedKeys(byWake) {
				at, _ := time.Parse(time.RFC3339, wake)
				c, err := a.Store.CreateCohort(ctx, fmt.Sprintf("%d/%s/%d/wake%d%s", in.RunID, step.ID, in.Cohort.ID, at.Unix(), visitKey(in.Visit)), in.RunID, step.ID, in.Cohort.ID, at)
				if err != nil {
					return err
				}
				cur.Buckets[wake] = c.ID
				if err := a.Store.WritePages(ctx, c.ID, []store.Page{{No: p.No, Members: byWake[wake]}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		ids := make([]int64, 0, len(cur.Buckets))
		for _, wake := range sortedKeys(cur.Buckets) {
			ids = append(ids, cur.Buckets[wake])
		}
		return a.seal(ctx, ids, in.Cohort.PageSpan)
	}
	return nil, temporal.NewNonRetryableApplicationError("step "+step.ID+" does not partition", "PlanMismatch", nil)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (a *Activities) seal(ctx context.Context, ids []int64, span int64) ([]CohortRef, error) {
	out := make([]CohortRef, len(ids))
	for i, id := range ids {
		c, err := a.Store.SealCohort(ctx, id, span)
		if err != nil {
			return nil, err
		}
		out[i] = refOf(c)
	}
	return out, nil
}

// assign puts each member on a branch or split arm.
func (a *Activities) assign(ctx context.Context, cp *compiledPlan, step *canvases.Step, in StepInput, members []int64) ([][]int64, error) {
	rows, err := a.Store.Profiles(ctx, members)
	if err != nil {
		return nil, err
	}
	arms := len(step.Branch) + len(step.Split)
	out := make([][]int64, arms)
	for _, r := range rows {
		var arm int
		if step.Kind == canvases.StepSplit {
			arm = splitArm(step.Split, in.CanvasID, step.ID, r.ID)
		} else {
			var doc map[string]any
			_ = json.Unmarshal(r.Doc, &doc) // a corrupt profile takes the else arm
			arm = arms - 1
			for i, cond := range cp.branches[step.ID] {
				if cond == nil {
					arm = i
					break
				}
				if ok, err := cond.EvalVisit(doc, in.Visit+1); err == nil && ok {
					arm = i
					break
				}
			}
		}
		out[arm] = append(out[arm], r.UID)
	}
	return out, nil
}

// splitArm picks a split arm from a stable hash of canvas, step and user, so
// a user lands on the same variant in every run.
func splitArm(arms []canvases.SplitArm, canvasID, stepID, userID string) int {
	h := fnv.New64a()
	h.Write([]byte(canvasID))
	h.Write([]byte{0})
	h.Write([]byte(stepID))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	bucket := int(h.Sum64() % 100)
	acc := 0
	for i, arm := range arms {
		acc += arm.Weight
		if bucket < acc {
			return i
		}
	}
	return len(arms) - 1
}

// wakeTimes groups members by the next occurrence of the wait's time of day
// in their time zone (the wait's zone, else the user's, else the config's).
func (a *Activities) wakeTimes(ctx context.Context, w *canvases.Wait, now time.Time, members []int64) (map[string][]int64, error) {
	if now.IsZero() {
		now = a.now()
	}
	hh, mm := 0, 0
	fmt.Sscanf(w.Until, "%d:%d", &hh, &mm)
	zones := map[string]*time.Location{}
	zone := func(name string) *time.Location {
		if loc, ok := zones[name]; ok {
			return loc
		}
		loc, err := canvases.LoadLocation(name)
		if err != nil {
			loc = nil
		}
		zones[name] = loc
		return loc
	}
	fallback := zone(a.Compiler.Options().Timezone)
	var rows []store.ProfileRow
	if w.Timezone == "" {
		var err error
		if rows, err = a.Store.Profiles(ctx, members); err != nil {
			return nil, err
		}
	}
	userZone := map[int64]string{}
	for _, r := range rows {
		var doc struct {
			Timezone string `json:"timezone"`
		}
		_ = json.Unmarshal(r.Doc, &doc)
		userZone[r.UID] = doc.Timezone
	}
	out := map[string][]int64{}
	for _, u := range members {
		loc := fallback
		if w.Timezone != "" {
			loc = zone(w.Timezone)
		} else if z := userZone[u]; z != "" {
			if l := zone(z); l != nil {
				loc = l
			}
		}
		local := now.In(loc)
		wake := time.Date(local.Year(), local.Month(), local.Day(), hh, mm, 0, 0, loc)
		if !wake.After(now) {
			wake = wake.AddDate(0, 0, 1)
		}
		key := wake.UTC().Format(time.RFC3339)
		out[key] = append(out[key], u)
	}
	return out, nil
}

// Tag adds and removes the step's tags on the cohort's members.
func (a *Activities) Tag(ctx context.Context, in StepInput) (int64, error) {
	cp, step, err := a.planStep(ctx, in)
	if err != nil {
		return 0, err
	}
	var cur pageCursor
	err = a.eachPage(ctx, cp, in, &cur, func(p store.Page) error {
		cur.Count += int64(len(p.Members))
		return a.Store.UpdateTags(ctx, p.Members, step.Tag.Add, step.Tag.Remove)
	})
	return cur.Count, err
}

// ExitInput ends a cohort's path at a step.
type ExitInput struct {
	StepInput
	Reason string `json:"reason"`
}

// Exit records that a cohort's remaining members finished at a step.
func (a *Activities) Exit(ctx context.Context, in ExitInput) (int64, error) {
	cp, _, err := a.planStep(ctx, in.StepInput)
	if err != nil {
		return 0, err
	}
	count := in.Cohort.Size
	if cp.exitEvents { // some members may have left already; count the rest
		var cur pageCursor
		if err := a.eachPage(ctx, cp, in.StepInput, &cur, func(p store.Page) error {
			cur.Count += int64(len(p.Members))
			return nil
		}); err != nil {
			return 0, err
		}
		count = cur.Count
	}
	return count, a.Store.RecordCohortExit(ctx, in.RunID, in.StepID, in.Cohort.ID, in.Reason, count)
}

// SubtractInput names a cohort and cohorts of the same page layout whose
// members leave it (users quiet hours held back at a push step).
type SubtractInput struct {
	RunID  int64       `json:"run_id"`
	StepID string      `json:"step_id"`
	Visit  int         `json:"visit,omitempty"`
	Cohort CohortRef   `json:"cohort"`
	Minus  []CohortRef `json:"minus"`
}

// Subtract writes the cohort's members that are in none of Minus into a new
// cohort. Deferred cohorts keep the page numbers of the cohort they came
// from, so each page only meets its own counterparts.
func (a *Activities) Subtract(ctx context.Context, in SubtractInput) (CohortRef, error) {
	key := fmt.Sprintf("%d/%s/%d/rest%s", in.RunID, in.StepID, in.Cohort.ID, visitKey(in.Visit))
	out, err := a.Store.CreateCohort(ctx, key, in.RunID, in.StepID, in.Cohort.ID, time.Time{})
	if err != nil {
		return CohortRef{}, err
	}
	var cur pageCursor
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cur)
	}
	for cur.NextPage < in.Cohort.PageSpan {
		to := min(cur.NextPage+64, in.Cohort.PageSpan)
		pages, err := a.Store.Pages(ctx, in.Cohort.ID, cur.NextPage, to)
		if err != nil {
			return CohortRef{}, err
		}
		gone := map[int64]bool{}
		for _, m := range in.Minus {
			held, err := a.Store.Pages(ctx, m.ID, cur.NextPage, to)
			if err != nil {
				return CohortRef{}, err
			}
			for _, p := range held {
				for _, u := range p.Members {
					gone[u] = true
				}
			}
		}
		kept := make([]store.Page, 0, len(pages))
		for _, p := range pages {
			members := p.Members
			if len(gone) > 0 {
				members = slices.DeleteFunc(slices.Clone(p.Members), func(u int64) bool { return gone[u] })
			}
			if len(members) > 0 {
				kept = append(kept, store.Page{No: p.No, Members: members})
			}
		}
		if err := a.Store.WritePages(ctx, out.ID, kept); err != nil {
			return CohortRef{}, err
		}
		cur.NextPage = to
		activity.RecordHeartbeat(ctx, cur)
	}
	sealed, err := a.Store.SealCohort(ctx, out.ID, in.Cohort.PageSpan)
	if err != nil {
		return CohortRef{}, err
	}
	return refOf(sealed), nil
}

// UnionInput names cohorts that go on as one: they woke at the same step
// at the same time. They are disjoint (a user is in one cohort of a run at
// a time) and small (the workflow merges at most a few tens of thousands
// of users).
type UnionInput struct {
	RunID   int64       `json:"run_id"`
	StepID  string      `json:"step_id"`
	Visit   int         `json:"visit,omitempty"`
	Cohorts []CohortRef `json:"cohorts"`
}

// Union writes the members of several cohorts into one, sorted into pages
// of increasing uid as every cohort is. Its key names the cohorts, so a
// retry finds the cohort (and, once sealed, the result) of the first
// attempt; rewriting pages by number makes a resumed write the same.
func (a *Activities) Union(ctx context.Context, in UnionInput) (CohortRef, error) {
	if len(in.Cohorts) == 0 {
		return CohortRef{}, temporal.NewNonRetryableApplicationError("union of no cohorts", "PlanMismatch", nil)
	}
	h := fnv.New64a()
	for _, c := range in.Cohorts {
		fmt.Fprintf(h, "%d,", c.ID)
	}
	key := fmt.Sprintf("%d/%s/union/%d/%x%s", in.RunID, in.StepID, in.Cohorts[0].ID, h.Sum64(), visitKey(in.Visit))
	out, err := a.Store.CreateCohort(ctx, key, in.RunID, in.StepID, in.Cohorts[0].ID, time.Time{})
	if err != nil {
		return CohortRef{}, err
	}
	if out.Sealed {
		return refOf(out), nil
	}
	var all []int64
	for _, c := range in.Cohorts {
		pages, err := a.Store.Pages(ctx, c.ID, 0, c.PageSpan)
		if err != nil {
			return CohortRef{}, err
		}
		for _, p := range pages {
			all = append(all, p.Members...)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	var pages []store.Page
	for start := 0; start < len(all); start += store.PageSize {
		pages = append(pages, store.Page{No: int64(len(pages)), Members: all[start:min(start+store.PageSize, len(all))]})
	}
	if err := a.Store.WritePages(ctx, out.ID, pages); err != nil {
		return CohortRef{}, err
	}
	sealed, err := a.Store.SealCohort(ctx, out.ID, int64(len(pages)))
	if err != nil {
		return CohortRef{}, err
	}
	return refOf(sealed), nil
}
