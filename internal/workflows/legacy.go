package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// loopV0 is the interpreter loop of runs recorded before loopChange: when
// Temporal suggests continuing as new it stops starting steps and waits for
// every running one, staff_task children included, before it continues.
// Kept unchanged so those runs replay; new runs use loop.
func (r *runner) loopV0(ctx workflow.Context, tokens []Token) ([]Token, error) {
	var runnable []Token
	// Sleeping tokens, by a sequence number, in the order they fell asleep;
	// each has a timer that moves it to runnable.
	sleeping := map[int]Token{}
	var order []int
	seq := 0
	sel := workflow.NewSelector(ctx)
	sleep := func(t Token) {
		seq++
		id := seq
		sleeping[id] = t
		order = append(order, id)
		wake := t.WakeAt
		if !t.Deadline.IsZero() {
			wake = t.Deadline
		}
		timer := workflow.NewTimer(ctx, max(wake.Sub(workflow.Now(ctx)), 0))
		sel.AddFuture(timer, func(f workflow.Future) {
			t, ok := sleeping[id]
			if !ok || f.Get(ctx, nil) != nil {
				return
			}
			delete(sleeping, id)
			if !t.Deadline.IsZero() {
				t.Resume = resumeTimeout // the event wait's timeout fired
				t.Seq++
			}
			t.WakeAt, t.Deadline = time.Time{}, time.Time{}
			runnable = append(runnable, t)
		})
	}
	// collect queues a collection of arrivals for every event wait: each
	// takes the next seq, kept in the sleeping token across continue-as-new.
	collect := func() {
		for _, id := range order {
			t, ok := sleeping[id]
			if !ok || t.Resume != resumeWaiting {
				continue
			}
			t.Seq++
			sleeping[id] = t
			c := t
			c.Resume, c.Deadline = resumeCollect, time.Time{}
			runnable = append(runnable, c)
		}
	}
	place := func(t Token) {
		if t.WakeAt.IsZero() && t.Deadline.IsZero() {
			runnable = append(runnable, t)
		} else {
			sleep(t)
		}
	}
	for _, t := range tokens {
		place(t)
	}
	// Arrivals may have been recorded while the run continued as new (its
	// signal then went to the old run): look once at the start.
	collect()
	arrivals := workflow.GetSignalChannel(ctx, ArrivalsSignal)
	sel.AddReceive(arrivals, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		for c.ReceiveAsync(nil) { // signals that came together are one collection
		}
		collect()
	})
	done := workflow.NewChannel(ctx)
	inFlight := 0
	// The status query lets `huabu run --wait` stop waiting once a run only
	// sleeps (a wait of days), and tells when it wakes.
	err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) {
		st := Status{RunID: r.runID, Active: inFlight + len(runnable), Stats: r.stats}
		for _, id := range order {
			if t, ok := sleeping[id]; ok {
				st.Waiting = append(st.Waiting, Waiting{Step: t.Step, Users: t.Cohort.Size, WakeAt: t.WakeAt, Deadline: t.Deadline})
			}
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	var firstErr error
	sel.AddReceive(done, func(c workflow.ReceiveChannel, _ bool) {
		var d stepDone
		c.Receive(ctx, &d)
		inFlight--
		if d.err != nil && firstErr == nil {
			firstErr = d.err
		}
		for _, t := range d.next {
			place(t)
		}
	})
	for {
		draining := firstErr != nil || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		for !draining && len(runnable) > 0 && inFlight < maxStepsInFlight {
			t := runnable[0]
			runnable = runnable[1:]
			inFlight++
			workflow.Go(ctx, func(gctx workflow.Context) {
				next, err := r.execute(gctx, t)
				done.Send(gctx, stepDone{next: next, err: err})
			})
		}
		if inFlight == 0 {
			if firstErr != nil {
				return nil, firstErr
			}
			var asleep []Token
			for _, id := range order {
				if t, ok := sleeping[id]; ok {
					asleep = append(asleep, t)
				}
			}
			if draining {
				return append(runnable, asleep...), nil
			}
			if len(runnable) == 0 && len(asleep) == 0 {
				return nil, nil
			}
		}
		sel.Select(ctx)
	}
}
