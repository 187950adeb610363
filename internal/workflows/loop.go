package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/activities"
)

// loopChange versions the interpreter loop. Runs recorded before it
// (DefaultVersion) keep loopV0; from version 1 the run never stops for
// continue-as-new: staff_task children outlive the run that started them,
// and cohorts waking at one step together, and arrivals signals, merge.
const loopChange = "loop-carries-in-flight"

// stopChange versions what a cancelled run does: from version 1 every
// cohort it still holds (asleep, waiting for an event, at a staff task,
// queued, or in a step the cancellation interrupted) exits with the stop's
// reason before the run is recorded as cancelled. Runs cancelled before it
// just ended.
const stopChange = "cancel-exits-everyone"

// StopSignal, sent before cancelling a run, says why it stops: the users
// it still holds exit with Stop.Reason (default "cancelled").
const StopSignal = "stop"

// Stop is the payload of StopSignal.
type Stop struct {
	Reason string `json:"reason"`       // the exit reason, e.g. "stopped"
	By     string `json:"by,omitempty"` // who stopped it (recorded with the run)
}

// StaffDoneSignal is how a staff_task child tells the run that started it
// (or the run it continued as) that it ended.
const StaffDoneSignal = "staff-done"

// StaffDone is the payload of StaffDoneSignal.
type StaffDone struct {
	Child   string                  `json:"child"` // the child's workflow id
	Outcome activities.StaffOutcome `json:"outcome"`
	Error   string                  `json:"error,omitempty"`
}

// Merging is bounded so a merged cohort stays cheap to build and to carry
// across continue-as-new.
const (
	maxMergedCohorts = 16
	maxMergedUsers   = 50000
)

// Past these, with continue-as-new suggested and work still running, the
// run stops starting steps so it can continue as new: a backstop far below
// Temporal's limits (50,000 events, 50 MB) for runs that are never idle.
const (
	backstopHistoryEvents = 8000
	backstopHistoryBytes  = 8 << 20
)

// sleeper is a token asleep on a timer (several cohorts, when merged).
type sleeper struct {
	id  int
	tok Token
}

// loop runs tokens until none is left (nil) or until Temporal suggests
// continuing as new and no step is running (the tokens to continue with).
// Nothing long-lived blocks that moment: sleeping cohorts are timers,
// cohorts waiting for an event are registered in the store, and staff_task
// children are awaited by signal, so they all go across as tokens while new
// work keeps starting until then.
func (r *runner) loop(ctx workflow.Context, tokens []Token) ([]Token, error) {
	var runnable []Token
	var asleep []*sleeper           // in the order they fell asleep
	var awaiting []Token            // staff_task steps whose child is running
	early := map[string]StaffDone{} // children that ended before their token was placed
	resolved := map[string]bool{}   // children already accounted for
	collecting := map[int64]bool{}  // waiting cohorts with a collection queued
	futures := map[string]workflow.ChildWorkflowFuture{}
	r.children = func() []string {
		ids := make([]string, len(awaiting))
		for i, t := range awaiting {
			ids[i] = t.Child
		}
		return ids
	}
	r.startedChild = func(id string, f workflow.ChildWorkflowFuture) { futures[id] = f }
	seq := 0
	sel := workflow.NewSelector(ctx)
	var firstErr error
	cancelled := false
	// A cancelled run (from stopV1 on) hands every cohort it holds to
	// stop: those asleep or queued, and those whose step the cancellation
	// interrupted (inFlightTokens), so each exits with the stop's reason.
	inFlightTokens := map[int]Token{}
	var interrupted []Token
	stepSeq := 0
	stopV1, stopVersioned := false, false
	stopping := func() bool {
		if ctx.Err() == nil {
			return false
		}
		if !stopVersioned {
			stopVersioned = true
			vctx, _ := workflow.NewDisconnectedContext(ctx)
			stopV1 = workflow.GetVersion(vctx, stopChange, workflow.DefaultVersion, 1) == 1
		}
		return stopV1
	}

	wake := func(id int) {
		i := slices.IndexFunc(asleep, func(s *sleeper) bool { return s.id == id })
		if i < 0 {
			return
		}
		t := asleep[i].tok
		asleep = slices.Delete(asleep, i, i+1)
		if !t.Deadline.IsZero() {
			t.Resume = resumeTimeout // the event wait's timeout fired
			t.Seq++
		}
		t.WakeAt, t.Deadline, t.From, t.MergeFrom = time.Time{}, time.Time{}, "", nil
		runnable = append(runnable, t)
	}
	sleep := func(t Token) {
		for _, s := range asleep {
			if mergeable(s.tok, t) {
				s.tok = merged(s.tok, t)
				return
			}
		}
		seq++
		id := seq
		asleep = append(asleep, &sleeper{id: id, tok: t})
		at := t.WakeAt
		if !t.Deadline.IsZero() {
			at = t.Deadline
		}
		timer := workflow.NewTimer(ctx, max(at.Sub(workflow.Now(ctx)), 0))
		sel.AddFuture(timer, func(f workflow.Future) {
			if f.Get(ctx, nil) == nil { // a cancelled timer: the run is ending
				wake(id)
			}
		})
	}
	finish := func(t Token, d StaffDone) {
		resolved[d.Child] = true
		if d.Error != "" {
			if firstErr == nil {
				firstErr = fmt.Errorf("staff task %s: %s", t.Step, d.Error)
			}
			return
		}
		out := d.Outcome
		t.Resume, t.Child, t.Staff = resumeStaffDone, "", &out
		runnable = append(runnable, t)
	}
	childEnded := func(d StaffDone) {
		if resolved[d.Child] {
			return // told twice: by its signal and by its future
		}
		i := slices.IndexFunc(awaiting, func(t Token) bool { return t.Child == d.Child })
		if i < 0 {
			early[d.Child] = d
			return
		}
		t := awaiting[i]
		awaiting = slices.Delete(awaiting, i, i+1)
		finish(t, d)
	}
	place := func(t Token) {
		switch {
		case t.Resume == resumeStaff:
			if d, ok := early[t.Child]; ok {
				delete(early, t.Child)
				finish(t, d)
				return
			}
			awaiting = append(awaiting, t)
			if f, ok := futures[t.Child]; ok {
				// Started by this run: its end is also seen directly, which
				// covers a child that could not signal (terminated).
				delete(futures, t.Child)
				id := t.Child
				sel.AddFuture(f, func(f workflow.Future) {
					var out activities.StaffOutcome
					d := StaffDone{Child: id}
					if err := f.Get(ctx, &out); err != nil {
						d.Error = err.Error()
					}
					d.Outcome = out
					childEnded(d)
				})
			}
		case t.WakeAt.IsZero() && t.Deadline.IsZero():
			if t.Resume == resumeCollect {
				collecting[t.Cohort.ID] = true
			}
			runnable = append(runnable, t)
		default:
			sleep(t)
		}
	}
	// collect queues a collection of arrivals for every event wait that has
	// none queued: one queued collection takes whatever arrived before it
	// runs, so signals that come meanwhile need no more.
	collect := func() {
		for _, s := range asleep {
			if s.tok.Resume != resumeWaiting || collecting[s.tok.Cohort.ID] {
				continue
			}
			collecting[s.tok.Cohort.ID] = true
			s.tok.Seq++
			c := s.tok
			c.Resume, c.Deadline = resumeCollect, time.Time{}
			runnable = append(runnable, c)
		}
	}
	for _, t := range tokens {
		place(t)
	}
	// Arrivals may have been recorded while the run continued as new (their
	// signal went to the old run): look once at the start.
	collect()
	arrivals := workflow.GetSignalChannel(ctx, ArrivalsSignal)
	sel.AddReceive(arrivals, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		for c.ReceiveAsync(nil) { // signals that came together are one collection
		}
		collect()
	})
	staffDone := workflow.GetSignalChannel(ctx, StaffDoneSignal)
	sel.AddReceive(staffDone, func(c workflow.ReceiveChannel, _ bool) {
		var d StaffDone
		c.Receive(ctx, &d)
		childEnded(d)
	})
	// Cancellation ends the loop once the running steps have stopped.
	cancel := workflow.NewChannel(ctx)
	watch, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(watch, func(gctx workflow.Context) {
		ctx.Done().Receive(gctx, nil)
		cancel.SendAsync(true)
	})
	sel.AddReceive(cancel, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		cancelled = true
		stopping()
	})
	done := workflow.NewChannel(ctx)
	inFlight := 0
	err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) {
		// A staff task's child counts as active, as it did when the run
		// waited for it in a step: `huabu run --wait` waits for it.
		st := Status{RunID: r.runID, Active: inFlight + len(runnable) + len(awaiting), Stats: r.stats}
		for _, s := range asleep {
			st.Waiting = append(st.Waiting, Waiting{Step: s.tok.Step, Users: size(s.tok), WakeAt: s.tok.WakeAt, Deadline: s.tok.Deadline})
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	sel.AddReceive(done, func(c workflow.ReceiveChannel, _ bool) {
		var d stepDone
		c.Receive(ctx, &d)
		inFlight--
		t := inFlightTokens[d.id]
		delete(inFlightTokens, d.id)
		if d.err != nil && stopping() {
			interrupted = append(interrupted, t) // its users exit where they were
			return
		}
		if d.err != nil && firstErr == nil {
			firstErr = d.err
		}
		for _, t := range d.next {
			place(t)
		}
	})
	for {
		info := workflow.GetInfo(ctx)
		suggested := info.GetContinueAsNewSuggested()
		backstop := suggested && (info.GetCurrentHistoryLength() >= backstopHistoryEvents || info.GetCurrentHistorySize() >= backstopHistoryBytes)
		for firstErr == nil && !cancelled && !stopping() && !backstop && len(runnable) > 0 && inFlight < maxStepsInFlight {
			t := runnable[0]
			runnable = runnable[1:]
			if t.Resume == resumeCollect {
				delete(collecting, t.Cohort.ID) // later arrivals need a later collection
			}
			inFlight++
			stepSeq++
			id := stepSeq
			inFlightTokens[id] = t
			workflow.Go(ctx, func(gctx workflow.Context) {
				next, err := r.execute(gctx, t)
				done.Send(gctx, stepDone{id: id, next: next, err: err})
			})
		}
		if inFlight == 0 {
			switch {
			case stopping():
				// Interrupted collections first: a final collection of
				// the same wait must not take their arrivals.
				r.stopped = true
				r.remaining = append(interrupted, carry(runnable, asleep, awaiting)...)
				return nil, workflow.ErrCanceled
			case firstErr != nil:
				return nil, firstErr
			case cancelled:
				return nil, workflow.ErrCanceled
			case suggested:
				// What came in while deciding goes across too.
				for arrivals.ReceiveAsync(nil) {
					collect()
				}
				var d StaffDone
				for staffDone.ReceiveAsync(&d) {
					childEnded(d)
					d = StaffDone{}
				}
				if firstErr != nil {
					return nil, firstErr
				}
				return carry(runnable, asleep, awaiting), nil
			case len(runnable) == 0 && len(asleep) == 0 && len(awaiting) == 0:
				return nil, nil
			}
		}
		sel.Select(ctx)
	}
}

// carry lists the tokens a run continues with, merging runnable cohorts
// bound for the same step so what goes across stays small.
func carry(runnable []Token, asleep []*sleeper, awaiting []Token) []Token {
	var out []Token
	for _, t := range runnable {
		if i := slices.IndexFunc(out, func(o Token) bool { return mergeable(o, t) }); i >= 0 {
			out[i] = merged(out[i], t)
			continue
		}
		out = append(out, t)
	}
	for _, s := range asleep {
		out = append(out, s.tok)
	}
	return append(out, awaiting...)
}

// mergeable says whether b's cohort can join a's: same step, same phase
// (entering it, or held back by quiet hours), same wake time and the same
// loop visits, within the bounds of a merge.
func mergeable(a, b Token) bool {
	if a.Step != b.Step || a.Resume != b.Resume || (a.Resume != "" && a.Resume != resumeDeferred) {
		return false
	}
	if !a.WakeAt.Equal(b.WakeAt) || !a.Deadline.IsZero() || !b.Deadline.IsZero() || !sameVisits(a.Visits, b.Visits) {
		return false
	}
	return 1+len(a.Merge)+1+len(b.Merge) <= maxMergedCohorts && size(a)+size(b) <= maxMergedUsers
}

func merged(a, b Token) Token {
	from := append(mergeFroms(a), b.From)
	a.MergeFrom = append(from, mergeFroms(b)...)
	a.Merge = append(slices.Clone(a.Merge), b.Cohort)
	a.Merge = append(a.Merge, b.Merge...)
	return a
}

// mergeFroms is the wait step of each of t's merged cohorts.
func mergeFroms(t Token) []string {
	if len(t.MergeFrom) == len(t.Merge) {
		return slices.Clone(t.MergeFrom)
	}
	out := make([]string, len(t.Merge))
	for i := range out {
		out[i] = t.From
	}
	return out
}

// size is how many users a token holds, merged cohorts included.
func size(t Token) int64 {
	n := t.Cohort.Size
	for _, c := range t.Merge {
		n += c.Size
	}
	return n
}

func sameVisits(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// wakeGranularity is how finely the end of a wait of d is timed: cohorts
// whose waits end in the same slot wake together, as one. A hundredth of
// the wait, between a second and an hour.
func wakeGranularity(d time.Duration) time.Duration {
	return min(max(d/100, time.Second), time.Hour).Truncate(time.Second)
}

// wakeAfter is now+d rounded up to the wait's granularity.
func wakeAfter(now time.Time, d time.Duration) time.Time {
	at := now.Add(d)
	g := wakeGranularity(d)
	if r := at.UnixNano() % int64(g); r != 0 {
		at = at.Add(g - time.Duration(r))
	}
	return at
}
