package simulate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// result reads the paths back from the scratch store.
func (s *sim) result(ctx context.Context) (*Result, error) {
	res := &Result{Steps: map[string]*Funnel{}, Users: map[string][]Passage{}, CanvasID: s.plan.ID, Name: s.plan.Name,
		From: s.opts.From, Until: s.end, History: s.history, Later: s.later, Skipped: s.skipped, Location: s.loc}
	res.Replayed = len(s.live)
	for _, st := range s.plan.Steps {
		res.Order = append(res.Order, st.ID)
		res.Steps[st.ID] = &Funnel{}
	}
	byRun := map[int64][]entryRecord{}
	var runs []int64
	for _, e := range s.entries {
		if _, ok := byRun[e.run]; !ok {
			runs = append(runs, e.run)
		}
		byRun[e.run] = append(byRun[e.run], e)
	}
	// Runs that entered nobody have no step entries; list them anyway.
	next, err := s.st.NextRunID(ctx)
	if err != nil {
		return nil, err
	}
	for id := s.firstRun; id < next; id++ {
		run, err := s.st.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, RunSummary{ID: run.ID, Trigger: run.Trigger, Started: run.StartedAt, Entered: run.Entered, State: run.State})
	}
	paths := map[int64][]*passage{} // uid → passages, every run
	r := &reader{sim: s, cohorts: newCohorts(s.st), ids: map[int64]string{}}
	for _, runID := range runs {
		if err := r.run(ctx, runID, byRun[runID], paths); err != nil {
			return nil, err
		}
	}
	uids := make([]int64, 0, len(paths))
	for u := range paths {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	if err := r.loadIDs(ctx, uids); err != nil {
		return nil, err
	}
	ids := r.ids
	for _, u := range uids {
		ps := paths[u]
		sort.SliceStable(ps, func(i, j int) bool {
			if !ps[i].order.Equal(ps[j].order) {
				return ps[i].order.Before(ps[j].order)
			}
			return ps[i].seq < ps[j].seq
		})
		out := make([]Passage, len(ps))
		for i, p := range ps {
			out[i] = p.Passage
			s.count(res.Steps[p.Step], p)
		}
		res.Users[ids[u]] = out
	}
	return res, nil
}

// cohorts reads cohorts' members and children once each.
type cohorts struct {
	st       *store.SQLite
	members  map[int64][]int64
	sets     map[int64]map[int64]bool
	children map[string][]store.Cohort
}

func newCohorts(st *store.SQLite) *cohorts {
	return &cohorts{st: st, members: map[int64][]int64{}, sets: map[int64]map[int64]bool{}, children: map[string][]store.Cohort{}}
}

func (c *cohorts) of(ctx context.Context, id int64) ([]int64, error) {
	if m, ok := c.members[id]; ok {
		return m, nil
	}
	co, err := c.st.GetCohort(ctx, id)
	if err != nil {
		return nil, err
	}
	pages, err := c.st.Pages(ctx, id, 0, co.PageSpan)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, p := range pages {
		out = append(out, p.Members...)
	}
	c.members[id] = out
	return out, nil
}

func (c *cohorts) has(ctx context.Context, id, uid int64) (bool, error) {
	set, ok := c.sets[id]
	if !ok {
		members, err := c.of(ctx, id)
		if err != nil {
			return false, err
		}
		set = make(map[int64]bool, len(members))
		for _, u := range members {
			set[u] = true
		}
		c.sets[id] = set
	}
	return set[uid], nil
}

// kids are the cohorts made from a cohort at a step, in the order they
// were made.
func (c *cohorts) kids(ctx context.Context, id int64, step string) ([]store.Cohort, error) {
	k := fmt.Sprint(id, "/", step)
	if out, ok := c.children[k]; ok {
		return out, nil
	}
	out, err := c.st.ChildCohorts(ctx, id, step)
	c.children[k] = out
	return out, err
}

// passage is a Passage being worked out.
type passage struct {
	Passage
	order time.Time // when the user got there: the order of the path
	seq   int
	next  string // the step they went on to
	entry entryRecord
}

func (s *sim) fmt(t time.Time) string { return t.In(s.loc).Format(time.RFC3339) }

// reader reads paths back, with what it has read so far.
type reader struct {
	sim     *sim
	cohorts *cohorts
	ids     map[int64]string // uid → user id
}

func (r *reader) loadIDs(ctx context.Context, uids []int64) error {
	var todo []int64
	for _, u := range uids {
		if _, ok := r.ids[u]; !ok {
			todo = append(todo, u)
		}
	}
	slices.Sort(todo)
	for i := 0; i < len(todo); i += 1000 {
		rows, err := r.sim.st.Profiles(ctx, todo[i:min(i+1000, len(todo))])
		if err != nil {
			return err
		}
		for _, row := range rows {
			r.ids[row.UID] = row.ID
		}
	}
	return nil
}

// run adds one run's passages to paths.
func (r *reader) run(ctx context.Context, runID int64, entries []entryRecord, paths map[int64][]*passage) error {
	s := r.sim
	tr, err := s.st.Trace(ctx, runID)
	if err != nil {
		return err
	}
	type key struct {
		step string
		uid  int64
	}
	type vkey struct {
		step  string
		visit int
		uid   int64
	}
	deliveries := map[vkey][]store.TraceDelivery{}
	for _, d := range tr.Deliveries {
		k := vkey{d.StepID, d.Visit, d.UID}
		deliveries[k] = append(deliveries[k], d)
	}
	type mkey struct{ step, user string }
	messages := map[mkey][]store.TraceMessage{}
	for _, m := range tr.Messages {
		messages[mkey{m.StepID, m.UserID}] = append(messages[mkey{m.StepID, m.UserID}], m)
	}
	staff := map[key]store.TraceStaffCustomer{}
	for _, c := range tr.StaffCustomers {
		staff[key{c.StepID, c.UID}] = c
	}
	var waiting []int64 // cohorts that waited for an event
	byUser := map[int64][]*passage{}
	for _, e := range entries {
		members, err := r.cohorts.of(ctx, e.cohort)
		if err != nil {
			return err
		}
		if st := s.plan.Step(e.step); st != nil && st.Wait != nil && st.Wait.Kind == canvases.WaitEvent {
			waiting = append(waiting, e.cohort)
		}
		for _, u := range members {
			p := &passage{Passage: Passage{Step: e.step, At: s.fmt(e.at), Run: runID}, order: e.at, seq: e.seq, entry: e}
			byUser[u] = append(byUser[u], p)
		}
	}
	uids := make([]int64, 0, len(byUser))
	for u := range byUser {
		uids = append(uids, u)
	}
	if err := r.loadIDs(ctx, uids); err != nil {
		return err
	}
	arrivals, err := s.st.Arrivals(ctx, waiting)
	if err != nil {
		return err
	}
	exits := map[int64]store.TraceExit{}
	for _, x := range tr.Exits {
		if _, ok := exits[x.UID]; !ok {
			exits[x.UID] = x
		}
	}
	conversions := map[int64]time.Time{}
	for _, c := range tr.Conversions {
		conversions[c.UID] = c.At
	}
	for u, ps := range byUser {
		sort.SliceStable(ps, func(i, j int) bool {
			if !ps[i].order.Equal(ps[j].order) {
				return ps[i].order.Before(ps[j].order)
			}
			return ps[i].seq < ps[j].seq
		})
		// A user who left through the exit event passes nothing after it
		// (their cohort may go on and be counted entering later steps).
		x, left := exits[u]
		if left {
			kept := ps[:0]
			for _, p := range ps {
				if !p.order.After(x.At) {
					kept = append(kept, p)
				}
			}
			ps = kept
		}
		for i, p := range ps {
			var next *passage
			if i+1 < len(ps) {
				next = ps[i+1]
			}
			step := s.plan.Step(p.Step)
			if step == nil {
				continue
			}
			if next != nil {
				p.next = next.Step
			}
			switch step.Kind {
			case canvases.StepPush:
				if err := r.pushOutcome(ctx, p, u, deliveries[vkey{p.Step, p.entry.visit, u}], messages[mkey{p.Step, r.ids[u]}]); err != nil {
					return err
				}
			case canvases.StepWait:
				s.waitOutcome(p, step, next, arrivals[p.entry.cohort][u])
			case canvases.StepBranch, canvases.StepSplit:
				if err := r.branchOutcome(ctx, p, step, u, next); err != nil {
					return err
				}
			case canvases.StepTag:
				p.Outcome = "tagged"
			case canvases.StepStaffTask:
				c, ok := staff[key{p.Step, u}]
				switch {
				case !ok || c.Status == store.CustomerAssigned || c.Status == store.CustomerSent:
					p.Outcome, p.Staff = "sent", c.Staff
				case c.Status == store.CustomerNoOwner || c.Status == store.CustomerNoAddress || c.Status == store.CustomerRemoved:
					p.Outcome = "suppressed:" + c.Status
				default:
					p.Outcome, p.Staff = "failed:"+c.Status, c.Staff
				}
			case canvases.StepExit:
				p.Outcome, p.Reason = "exited", step.Exit.Reason
			}
		}
		if left && len(ps) > 0 {
			// Where they were when the exit event came: a wait, or a message
			// quiet hours held back, ends there.
			last := ps[len(ps)-1]
			if last.Outcome == "waited" || last.Outcome == "" {
				last.Outcome, last.Reason, last.Waiting, last.Until = "exited", x.Reason, false, s.fmt(x.At)
				last.Event, last.TimedOut = "", false
			}
		}
		for _, p := range ps {
			if p.Outcome == "" {
				p.Outcome, p.Waiting = "waited", true // the simulation ended first
			}
		}
		if at, ok := conversions[u]; ok {
			var where *passage
			for _, p := range ps {
				if !p.order.After(at) {
					where = p
				}
			}
			if where != nil {
				where.Converted = s.fmt(at)
			}
		}
		paths[u] = append(paths[u], ps...)
	}
	return nil
}

// pushOutcome reads a message's fate from the delivery ledger and the
// outbox.
func (r *reader) pushOutcome(ctx context.Context, p *passage, uid int64, ds []store.TraceDelivery, msgs []store.TraceMessage) error {
	s := r.sim
	var d *store.TraceDelivery
	for i := range ds {
		if !ds[i].At.Before(p.order) {
			d = &ds[i]
			break
		}
	}
	if d == nil {
		// Not decided: quiet hours held the message past the end, or the
		// user left first (decided by the caller).
		wake, err := r.deferredUntil(ctx, p, uid)
		if !wake.IsZero() {
			p.Outcome, p.Reason, p.Until, p.Waiting = "waited", "quiet_hours", s.fmt(wake), true
		}
		return err
	}
	switch d.State {
	case store.DeliverySent:
		p.Outcome = "sent"
	case store.DeliverySuppressed:
		p.Outcome = "suppressed:" + d.Reason
	case store.DeliveryFailed:
		p.Outcome = "failed:" + d.Reason
	default:
		p.Outcome = "failed:" + d.State
	}
	p.Channel = d.Channel
	if d.At.After(p.order.Add(time.Second)) {
		p.Entered, p.At = p.At, s.fmt(d.At)
	}
	if d.State != store.DeliverySent {
		return nil
	}
	for _, m := range msgs {
		if !m.At.Before(d.At.Add(-time.Second)) {
			p.Message = m.Message
			break
		}
	}
	return nil
}

// deferredUntil is when quiet hours would let a held-back message go.
func (r *reader) deferredUntil(ctx context.Context, p *passage, uid int64) (time.Time, error) {
	kids, err := r.cohorts.kids(ctx, p.entry.cohort, p.Step)
	if err != nil {
		return time.Time{}, err
	}
	for _, c := range kids {
		if c.WakeAt.IsZero() {
			continue
		}
		in, err := r.cohorts.has(ctx, c.ID, uid)
		if err != nil {
			return time.Time{}, err
		}
		if in {
			return c.WakeAt, nil
		}
	}
	return time.Time{}, nil
}

// waitOutcome: until when the user waited, and why they went on.
func (s *sim) waitOutcome(p *passage, step *canvases.Step, next *passage, arrived time.Time) {
	p.Outcome = "waited"
	w := step.Wait
	if w.Kind == canvases.WaitEvent {
		if !arrived.IsZero() {
			p.Event = w.Event
		} else if next != nil {
			p.TimedOut = true
		}
	}
	if next != nil {
		// They went on when they entered the next step: when the wait
		// ended, or when their arrival was collected (right away).
		p.Until = next.At
		return
	}
	p.Waiting = true
	switch w.Kind {
	case canvases.WaitDuration:
		p.Until = s.fmt(p.order.Add(w.Duration.Std()))
	case canvases.WaitEvent:
		if arrived.IsZero() {
			p.Until = s.fmt(p.order.Add(w.Timeout.Std()))
		}
	case canvases.WaitAt:
		if at, err := time.Parse(time.RFC3339, w.At); err == nil {
			p.Until = s.fmt(at)
		}
	}
}

// branchOutcome names the arm a user took: the arm cohort they are in
// (arms are made in order), else the step they went to.
func (r *reader) branchOutcome(ctx context.Context, p *passage, step *canvases.Step, uid int64, next *passage) error {
	kids, err := r.cohorts.kids(ctx, p.entry.cohort, p.Step)
	if err != nil {
		return err
	}
	for i, c := range kids {
		in, err := r.cohorts.has(ctx, c.ID, uid)
		if err != nil {
			return err
		}
		if !in {
			continue
		}
		if step.Kind == canvases.StepSplit && i < len(step.Split) {
			p.Outcome, p.Arm = "branch:"+step.Split[i].Goto, step.Split[i].Name
			return nil
		}
		if i < len(step.Branch) {
			p.Outcome = "branch:" + step.Branch[i].Goto
			return nil
		}
	}
	if next != nil {
		p.Outcome = "branch:" + next.Step
	}
	return nil
}

// count adds a passage to its step's funnel.
func (s *sim) count(f *Funnel, p *passage) {
	if f == nil {
		return
	}
	f.Entered++
	reason := func(r string) {
		if f.Reasons == nil {
			f.Reasons = map[string]int64{}
		}
		f.Reasons[r]++
	}
	switch {
	case p.Outcome == "sent":
		f.Sent++
		if p.Entered != "" {
			f.Delayed++
		}
	case len(p.Outcome) > 11 && p.Outcome[:11] == "suppressed:":
		f.Suppressed++
		reason(p.Outcome)
	case len(p.Outcome) > 7 && p.Outcome[:7] == "failed:":
		f.Failed++
		reason(p.Outcome)
	case len(p.Outcome) > 7 && p.Outcome[:7] == "branch:":
		if f.Next == nil {
			f.Next = map[string]int64{}
		}
		f.Next[p.Outcome[7:]]++
	case p.Outcome == "exited":
		f.Exited++
	case p.Event != "" || p.TimedOut:
		// A wait for an event: who went on because it came, who timed out.
		if f.Next == nil {
			f.Next = map[string]int64{}
		}
		f.Next[p.next]++
	}
	if p.Waiting {
		f.Waiting++
	}
	if p.Converted != "" {
		f.Converted++
	}
}
