package simulate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/liveness"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/triggers"
	"github.com/huabu/huabu/internal/workflows"
)

// driveName is the driver workflow's type in the test environment.
const driveName = "SimulateDrive"

// driveInput is what the driver does: start runs at the fire times (a
// schedule's firings, or the start of a manual canvas), route the event
// batches at theirs, and end at End.
type driveInput struct {
	Fires   []time.Time   `json:"fires"`
	Batches []time.Time   `json:"batches"`
	Window  time.Duration `json:"window"` // the router's entry window
	End     time.Time     `json:"end"`
}

// drive runs the simulation in Temporal's test environment.
func (s *sim) drive(ctx context.Context) error {
	fires, err := fireTimes(s.plan, s.opts.From, s.end, s.loc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	in := driveInput{Fires: fires, End: s.end, Window: s.router.Window()}
	for _, b := range s.replay {
		in.Batches = append(in.Batches, b.at)
	}
	if s.cursor, err = s.st.LastEventID(ctx); err != nil {
		return err
	}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(quietLogger{})
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(s.opts.From)
	// Activities over many pages may take a while in wall time; the test
	// environment would otherwise call a quiet minute a stuck workflow.
	env.SetTestTimeout(time.Hour)
	// Workflow code here shares the machine with the activities it runs
	// (and on a busy machine may wait its turn for over a second): not a
	// deadlock, whatever the live worker's detector would think.
	// Activities heartbeat while they run, as on the live worker (their
	// heartbeat timeouts assume it).
	env.SetWorkerOptions(sdkworker.Options{DeadlockDetectionTimeout: time.Hour,
		Interceptors: []interceptor.WorkerInterceptor{liveness.Interceptor(4 * time.Second)}})
	workflows.Register(env)
	env.RegisterActivity(s.acts)
	env.RegisterActivity(s.staffActs)
	env.RegisterWorkflowWithOptions(s.driveWorkflow, workflow.RegisterOptions{Name: driveName})
	s.clock.use(env)
	env.ExecuteWorkflow(driveName, in)
	if !env.IsWorkflowCompleted() {
		return fmt.Errorf("the simulation did not complete")
	}
	return env.GetWorkflowError()
}

// fireTimes are the times a canvas's trigger starts runs by itself within
// [from, end): every firing of a schedule, once at from for a manual
// canvas, none for an event trigger (events start its runs).
func fireTimes(p *canvases.Plan, from, end time.Time, loc *time.Location) ([]time.Time, error) {
	switch p.Trigger.Kind {
	case canvases.TriggerManual:
		return []time.Time{from}, nil
	case canvases.TriggerSchedule:
	default:
		return nil, nil
	}
	sc := p.Trigger.Schedule
	if sc.Timezone != "" {
		l, err := canvases.LoadLocation(sc.Timezone)
		if err != nil {
			return nil, err
		}
		loc = l
	}
	lo, hi := from, end
	if sc.Start != "" {
		if t, err := time.Parse(time.RFC3339, sc.Start); err == nil && t.After(lo) {
			lo = t
		}
	}
	if sc.End != "" {
		if t, err := time.Parse(time.RFC3339, sc.End); err == nil && t.Before(hi) {
			hi = t
		}
	}
	if sc.Cron == "" {
		at, err := time.Parse(time.RFC3339, sc.At)
		if err != nil {
			return nil, err
		}
		if at.Before(lo) || !at.Before(hi) {
			return nil, nil
		}
		return []time.Time{at}, nil
	}
	spec, err := canvases.CronParser.Parse(sc.Cron)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	// A firing exactly at from counts: Next gives the first one after.
	for t := spec.Next(lo.In(loc).Add(-time.Nanosecond)); t.Before(hi); t = spec.Next(t) {
		out = append(out, t)
	}
	return out, nil
}

// driveWorkflow is the driver: the part of a live deployment around its
// runs (Temporal Schedules, the event feed and router) in one workflow.
func (s *sim) driveWorkflow(ctx workflow.Context, in driveInput) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	running := map[string]bool{}
	var failed error
	startRun := func(id string, run workflows.RunInput) {
		if _, seen := running[id]; seen {
			return
		}
		running[id] = true
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id})
		f := workflow.ExecuteChildWorkflow(cctx, workflows.RunName, run)
		workflow.Go(ctx, func(gctx workflow.Context) {
			if err := f.Get(gctx, nil); err != nil && failed == nil {
				failed = fmt.Errorf("run %s: %w", id, err)
			}
			running[id] = false
		})
	}
	var lastScheduled string
	for i, j := 0, 0; i < len(in.Fires) || j < len(in.Batches); {
		fire := i < len(in.Fires) && (j >= len(in.Batches) || !in.Batches[j].Before(in.Fires[i]))
		var at time.Time
		if fire {
			at = in.Fires[i]
		} else {
			at = in.Batches[j]
		}
		if d := at.Sub(workflow.Now(ctx)); d > 0 {
			if err := workflow.Sleep(ctx, d); err != nil {
				return err
			}
		}
		if fire {
			i++
			kind := s.plan.Trigger.Kind
			// A schedule skips a firing while its last run is still going
			// (the overlap policy Huabu's schedules have).
			if kind == canvases.TriggerSchedule && running[lastScheduled] {
				s.skipped = append(s.skipped, at)
				continue
			}
			// Named as a live run of the same trigger is, with its virtual time.
			name := "manual"
			if kind == canvases.TriggerSchedule {
				name = "scheduled"
			}
			id := fmt.Sprintf("huabu-%s-%s-%s", s.plan.ID, name, at.UTC().Format("20060102T150405Z"))
			startRun(id, workflows.RunInput{CanvasID: s.plan.ID, PlanHash: s.plan.Hash, Trigger: kind})
			lastScheduled = id
			continue
		}
		var out routed
		if err := workflow.ExecuteLocalActivity(lctx, s.route, j).Get(ctx, &out); err != nil {
			return err
		}
		j++
		for _, id := range out.Signals {
			if running[id] {
				_ = workflow.SignalExternalWorkflow(ctx, id, "", workflows.ArrivalsSignal, nil).Get(ctx, nil)
			}
		}
		if out.Gathering {
			// Entries gather for the router's window, then start one run,
			// as live. Batches are a window apart, so none falls inside.
			if err := workflow.Sleep(ctx, in.Window); err != nil {
				return err
			}
			if err := workflow.ExecuteLocalActivity(lctx, s.startWindows).Get(ctx, &out); err != nil {
				return err
			}
			for _, st := range out.Starts {
				startRun(st.ID, st.Input)
			}
		}
	}
	if d := in.End.Sub(workflow.Now(ctx)); d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return err
		}
	}
	return failed
}

// routed is what routing a batch asks of Temporal: runs to signal now,
// and, when entries gather in a window, runs to start when it closes.
type routed struct {
	Starts    []start  `json:"starts,omitempty"`
	Signals   []string `json:"signals,omitempty"`
	Gathering bool     `json:"gathering,omitempty"`
}

type start struct {
	ID    string             `json:"id"`
	Input workflows.RunInput `json:"input"`
}

// route stores a batch of events at its virtual time and routes it the way
// the live event feed does: computed traits brought up to date, the events
// read back from the store and handed to the router, which records exits,
// conversions and arrivals (whose runs are signalled now) and gathers
// entries in windows (started by startWindows when they close).
func (s *sim) route(ctx context.Context, i int) (routed, error) {
	b := s.replay[i]
	if _, err := s.st.Ingest(ctx, b.msgs, store.IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: s.clock.Now()}); err != nil {
		return routed{}, err
	}
	names, err := s.router.RoutedEvents(ctx)
	if err != nil {
		return routed{}, err
	}
	for {
		rows, next, err := s.st.EventsToRoute(ctx, s.cursor, 2000, names)
		if err != nil {
			return routed{}, err
		}
		if len(rows) > 0 {
			events := app.EventsOf(rows)
			if s.router.ReadsUser(events) {
				// A condition reads the users: their traits first, with these
				// events counted, as the feed waits for them.
				uids := make([]int64, len(events))
				for i, e := range events {
					uids[i] = e.UID
				}
				if err := s.traitsOf(ctx, uids, true); err != nil {
					return routed{}, err
				}
			}
			if err := s.router.Route(ctx, events); err != nil {
				return routed{}, err
			}
		}
		s.cursor = next
		if len(rows) < 2000 {
			break
		}
	}
	out := s.starts.take()
	out.Gathering = s.router.PendingFrom() > 0
	return out, nil
}

// startWindows starts the runs of the entry windows that have closed.
func (s *sim) startWindows(ctx context.Context) (routed, error) {
	s.router.StartWindows(ctx, false)
	return s.starts.take(), nil
}

// starter is the router's triggers.Runs: the runs it would start and the
// runs it would signal go to the driver, which starts and signals them in
// the test environment.
type starter struct {
	canvasID string
	mu       sync.Mutex
	out      routed
}

func (t *starter) StartEventRun(_ context.Context, run triggers.EventRun) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A copied store may hold windows of other canvases: they do not run.
	if run.CanvasID == t.canvasID {
		t.out.Starts = append(t.out.Starts, start{ID: run.WorkflowID, Input: workflows.EventRunInput(run.CanvasID, run.PlanHash, run.Users)})
	}
	return nil
}

func (t *starter) SignalArrivals(_ context.Context, workflowID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !slices.Contains(t.out.Signals, workflowID) {
		t.out.Signals = append(t.out.Signals, workflowID)
	}
	return nil
}

func (t *starter) take() routed {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.out
	t.out = routed{}
	return out
}

// quietLogger drops the test environment's logs (it logs every timer).
type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}
