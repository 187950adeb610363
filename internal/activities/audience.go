package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// ProfileStore reads the profiles an audience, a condition or a message
// reads, with the staff who own them, and writes tags (Enter, Partition,
// Send, Tag, the staff activities).
type ProfileStore interface {
	ScanProfiles(ctx context.Context, after int64, limit int) ([]store.ProfileRow, error)
	Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error)
	UIDs(ctx context.Context, ids []string) (map[string]int64, error)
	StaffByIDs(ctx context.Context, ids []string) (map[string]store.Staff, error)
	UpdateTags(ctx context.Context, uids []int64, add, remove []string) error
}

// EnterInput starts a run's entry: the whole audience (scheduled and manual
// runs) or the named users (manual runs with --profiles, event triggers).
type EnterInput struct {
	RunID    int64    `json:"run_id"`
	CanvasID string   `json:"canvas_id"`
	PlanHash string   `json:"plan_hash"`
	UserIDs  []string `json:"user_ids,omitempty"`
	// ApplyAudience filters named users by the audience and re-entry rules
	// (event triggers); a manual run for named users enters them as given.
	ApplyAudience bool `json:"apply_audience,omitempty"`
}

// entryCursor is the heartbeat of Enter: profiles up to AfterUID are done
// and pages below NextPage are written. Each chunk of profiles owns the
// pages [NextPage, NextPage+pagesPerChunk) and rewrites them whole, so a
// retry that resumes from an older cursor (heartbeats are throttled) writes
// the same chunks into the same pages instead of shifting them.
type entryCursor struct {
	AfterUID int64 `json:"after_uid"`
	NextPage int64 `json:"next_page"`
	Entered  int64 `json:"entered"`
}

// scanChunk is how many profiles are read and evaluated at a time.
const (
	pagesPerChunk = 4
	scanChunk     = pagesPerChunk * store.PageSize
)

// Enter evaluates who enters the run and writes the entry cohort.
func (a *Activities) Enter(ctx context.Context, in EnterInput) (CohortRef, error) {
	return a.enter(ctx, in, entryPart{key: "entry", upToUID: math.MaxInt64})
}

// EnterHeadResult is the head of an audience run's entry: the cohort of the
// first scanChunk profiles that enter, and where the rest begins.
type EnterHeadResult struct {
	Cohort  CohortRef `json:"cohort"`
	LastUID int64     `json:"last_uid"` // the head scanned the profiles up to it
	Done    bool      `json:"done"`     // it scanned them all: there is no rest
}

// EnterHead enters the audience among the first scanChunk profiles (in uid
// order) as a cohort of its own, so that the run's first step starts on
// them at once while EnterRest scans the rest: a million-user broadcast
// sends its first message after one chunk is read, not after the whole
// audience was written. Retried, it reads the same chunk again (new
// profiles only ever get higher uids) and returns the cohort it sealed.
func (a *Activities) EnterHead(ctx context.Context, in EnterInput) (EnterHeadResult, error) {
	rows, err := a.Store.ScanProfiles(ctx, 0, scanChunk)
	if err != nil {
		return EnterHeadResult{}, err
	}
	res := EnterHeadResult{LastUID: math.MaxInt64, Done: len(rows) < scanChunk}
	if !res.Done {
		res.LastUID = rows[len(rows)-1].UID
	}
	res.Cohort, err = a.enter(ctx, in, entryPart{key: "entry", upToUID: res.LastUID})
	return res, err
}

// EnterRestInput is the rest of an audience run's entry after its head.
type EnterRestInput struct {
	EnterInput
	AfterUID int64 `json:"after_uid"` // the head's LastUID
	Head     int64 `json:"head"`      // users the head entered
}

// EnterRest enters the audience among the profiles after the head's, as a
// second entry cohort, and records the run's entered count of both.
func (a *Activities) EnterRest(ctx context.Context, in EnterRestInput) (CohortRef, error) {
	return a.enter(ctx, in.EnterInput, entryPart{key: "entry-rest", afterUID: in.AfterUID, upToUID: math.MaxInt64, enteredBefore: in.Head})
}

// entryPart is the profiles an entry cohort is drawn from: uids in
// (afterUID, upToUID], written as the cohort "RUN/key".
type entryPart struct {
	key               string
	afterUID, upToUID int64
	enteredBefore     int64 // by the run's earlier entry cohorts
}

func (a *Activities) enter(ctx context.Context, in EnterInput, part entryPart) (CohortRef, error) {
	cp, err := a.compiled(ctx, in.PlanHash)
	if err != nil {
		return CohortRef{}, err
	}
	cohort, err := a.Store.CreateCohort(ctx, fmt.Sprintf("%d/%s", in.RunID, part.key), in.RunID, cp.plan.Start(), 0, time.Time{})
	if err != nil {
		return CohortRef{}, err
	}
	if cohort.Sealed {
		return refOf(cohort), nil // a retry after the first attempt finished
	}
	cur := entryCursor{AfterUID: part.afterUID}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cur)
	}
	e := &entrant{a: a, cp: cp, in: in, cohort: cohort.ID, now: a.now(), upToUID: part.upToUID}
	if in.UserIDs != nil {
		err = e.named(ctx, &cur)
	} else {
		err = e.everyone(ctx, &cur)
	}
	if err != nil {
		return CohortRef{}, err
	}
	sealed, err := a.Store.SealCohort(ctx, cohort.ID, cur.NextPage)
	if err != nil {
		return CohortRef{}, err
	}
	if err := a.Store.SetRunEntered(ctx, in.RunID, part.enteredBefore+sealed.Size); err != nil {
		return CohortRef{}, err
	}
	return refOf(sealed), nil
}

type entrant struct {
	a      *Activities
	cp     *compiledPlan
	in     EnterInput
	cohort int64
	now    time.Time
	// upToUID bounds an audience scan: profiles after it are another
	// entry cohort's (EnterHead).
	upToUID int64
}

// everyone scans every profile in uid order. Reading the next chunk overlaps
// with evaluating the current one.
func (e *entrant) everyone(ctx context.Context, cur *entryCursor) error {
	type chunk struct {
		rows []store.ProfileRow
		err  error
	}
	chunks := make(chan chunk, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(chunks)
		after := cur.AfterUID
		for {
			rows, err := e.a.Store.ScanProfiles(ctx, after, scanChunk)
			full := len(rows) == scanChunk
			if i := slices.IndexFunc(rows, func(r store.ProfileRow) bool { return r.UID > e.upToUID }); i >= 0 {
				rows, full = rows[:i], false
			}
			select {
			case chunks <- chunk{rows, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || !full {
				return
			}
			after = rows[len(rows)-1].UID
		}
	}()
	for c := range chunks {
		if c.err != nil {
			return c.err
		}
		if len(c.rows) == 0 {
			break
		}
		matched, err := e.match(c.rows, e.cp.audience)
		if err != nil {
			return err
		}
		last := c.rows[len(c.rows)-1].UID
		if err := e.admit(ctx, matched, cur, last); err != nil {
			return err
		}
		cur.AfterUID = last
		activity.RecordHeartbeat(ctx, *cur)
	}
	return nil
}

// named enters the given users (unknown ids are skipped). They are one
// chunk: a retry decides again and replaces what an earlier attempt wrote.
func (e *entrant) named(ctx context.Context, cur *entryCursor) error {
	*cur = entryCursor{AfterUID: -1}
	uids, err := e.decideNamed(ctx)
	if err != nil {
		return err
	}
	return e.write(ctx, uids, cur, math.MaxInt64)
}

// decideNamed returns who of the named users enter, in uid order: all
// known ones, or with ApplyAudience those the audience and the re-entry
// rules admit. It only reads.
func (e *entrant) decideNamed(ctx context.Context) ([]int64, error) {
	uidsByID, err := e.a.Store.UIDs(ctx, e.in.UserIDs)
	if err != nil {
		return nil, err
	}
	uids := make([]int64, 0, len(uidsByID))
	for _, u := range uidsByID {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	if !e.in.ApplyAudience {
		return uids, nil
	}
	rows, err := e.a.Store.Profiles(ctx, uids)
	if err != nil {
		return nil, err
	}
	matched, err := e.match(rows, e.cp.audience)
	if err != nil {
		return nil, err
	}
	return e.admitted(ctx, matched)
}

// match evaluates a condition over profiles in parallel; a nil condition
// matches everyone. The result is in uid order.
func (e *entrant) match(rows []store.ProfileRow, cond *canvases.Condition) ([]int64, error) {
	if cond == nil {
		out := make([]int64, len(rows))
		for i, r := range rows {
			out[i] = r.UID
		}
		return out, nil
	}
	// Only the fields the condition reads are decoded, when it says which.
	// A worker reuses one map for its profiles: a profile's fields are
	// bound into the condition's own values (Condition.Eval) and not kept.
	fields, known := cond.UserFields()
	decode := func(reuse map[string]any, doc []byte) (map[string]any, error) {
		if known {
			return decodeFieldsInto(reuse, doc, fields)
		}
		var m map[string]any
		err := json.Unmarshal(doc, &m)
		return m, err
	}
	keep := make([]bool, len(rows))
	errs := make([]error, e.a.parallel())
	var wg sync.WaitGroup
	per := (len(rows) + len(errs) - 1) / len(errs)
	for w := range errs {
		lo, hi := w*per, min((w+1)*per, len(rows))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reuse map[string]any
			eval := cond.Evaluator()
			for i := lo; i < hi; i++ {
				doc, err := decode(reuse, rows[i].Doc)
				if doc != nil {
					reuse = doc
				}
				if err != nil {
					continue // a corrupt profile never matches; it cannot be evaluated
				}
				ok, err := eval.Eval(doc, nil)
				if err != nil {
					// A runtime error (say, a nil in arithmetic) excludes the user
					// rather than failing the whole run.
					continue
				}
				keep[i] = ok
			}
		}()
	}
	wg.Wait()
	out := make([]int64, 0, len(rows)/2)
	for i, k := range keep {
		if k {
			out = append(out, rows[i].UID)
		}
	}
	return out, nil
}

// admit applies the re-entry rule and writes the users as the entry pages
// of the chunk of profiles up to lastUID.
func (e *entrant) admit(ctx context.Context, uids []int64, cur *entryCursor, lastUID int64) error {
	uids, err := e.admitted(ctx, uids)
	if err != nil {
		return err
	}
	return e.write(ctx, uids, cur, lastUID)
}

// admitted leaves out of uids the users the re-entry rule keeps out: their
// last entry into the canvas (in a run other than this one) is too recent.
func (e *entrant) admitted(ctx context.Context, uids []int64) ([]int64, error) {
	entry := e.cp.plan.Entry
	if entry.Reentry == canvases.ReentryAlways || len(uids) == 0 {
		return uids, nil
	}
	last, err := e.a.Store.LastEntries(ctx, e.in.CanvasID, e.in.RunID, uids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(uids, func(u int64) bool {
		at, seen := last[u]
		if !seen {
			return false
		}
		if entry.Reentry == canvases.ReentryNever {
			return true
		}
		return e.now.Sub(at) < entry.After.Std()
	}), nil
}

// write replaces the chunk's pages (and entry rows) with uids and moves the
// cursor past the chunk's pages.
func (e *entrant) write(ctx context.Context, uids []int64, cur *entryCursor, lastUID int64) error {
	chunk := store.EntryChunk{
		CanvasID: e.in.CanvasID, RunID: e.in.RunID, AfterUID: cur.AfterUID, LastUID: lastUID,
		FromPage: cur.NextPage, ToPage: cur.NextPage + max(pagesPerChunk, int64(len(uids)+store.PageSize-1)/store.PageSize),
		RecordEntries: e.cp.needsEntries,
	}
	for start := 0; start < len(uids); start += store.PageSize {
		chunk.Pages = append(chunk.Pages, store.Page{No: chunk.FromPage + int64(len(chunk.Pages)), Members: uids[start:min(start+store.PageSize, len(uids))]})
	}
	if err := e.a.Store.WriteEntryChunk(ctx, e.cohort, chunk); err != nil {
		return err
	}
	cur.NextPage = chunk.ToPage
	cur.Entered += int64(len(uids))
	return nil
}
