package metrics

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/store"
)

// Providers observes every channel Send (channels.SendObserver).
type Providers struct {
	latency *prometheus.HistogramVec
	errs    *prometheus.CounterVec
	// WeCom API calls one by one (channels.CallObserver).
	calls    *prometheus.HistogramVec
	callErrs *prometheus.CounterVec
}

// NewProviders makes the provider metrics.
func NewProviders() *Providers {
	return &Providers{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "huabu_provider_send_duration_seconds",
			Help:    "Time a channel's provider took for one Send (a batch of recipients, one or more API calls), by channel and provider.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"channel", "provider"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "huabu_provider_errors_total",
			Help: "Errors providers answered, by channel, provider, class (retry_later, retry_now, permanent, ambiguous) and the provider's code (or Huabu's reason when it gave none); a failed call counts once, a refused recipient once each.",
		}, []string{"channel", "provider", "class", "code"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "huabu_provider_call_duration_seconds",
			Help:    "Time one provider API call took, by provider and API (WeCom: every call, of messages, staff tasks and directory sync).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "api"}),
		callErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "huabu_provider_call_errors_total",
			Help: "Provider API calls that failed, by provider, API, class and the provider's code (WeCom's errcode, or an HTTP status or transport reason).",
		}, []string{"provider", "api", "class", "code"}),
	}
}

// ObserveCall implements channels.CallObserver.
func (p *Providers) ObserveCall(provider, api string, took time.Duration, err error) {
	p.calls.WithLabelValues(provider, api).Observe(took.Seconds())
	if err == nil {
		return
	}
	var ce *channels.Error
	if errors.As(err, &ce) {
		p.callErrs.WithLabelValues(provider, api, string(ce.Class), codeOf(ce.Code, ce.Reason)).Inc()
		return
	}
	p.callErrs.WithLabelValues(provider, api, "", "error").Inc()
}

// Collectors are the metrics to register.
func (p *Providers) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.latency, p.errs, p.calls, p.callErrs}
}

// ObserveSend implements channels.SendObserver.
func (p *Providers) ObserveSend(channel, provider string, took time.Duration, outs []channels.Outcome, err error) {
	p.latency.WithLabelValues(channel, provider).Observe(took.Seconds())
	var ce *channels.Error
	if errors.As(err, &ce) {
		p.errs.WithLabelValues(channel, provider, string(ce.Class), codeOf(ce.Code, ce.Reason)).Inc()
		return
	}
	if err != nil {
		p.errs.WithLabelValues(channel, provider, "", "error").Inc()
		return
	}
	type key struct{ class, code string }
	counts := map[key]float64{}
	for _, o := range outs {
		if o.Status == channels.Failed || o.Status == channels.Unknown {
			counts[key{string(o.Class), codeOf(o.Code, o.Reason)}]++
		}
	}
	for k, n := range counts {
		p.errs.WithLabelValues(channel, provider, k.class, k.code).Add(n)
	}
}

func codeOf(code, reason string) string {
	if code != "" {
		return code
	}
	return reason
}

// Activities times every activity the worker runs: the work behind each
// step (Enter: the audience; Send: a push over cohort pages; Partition:
// branches and splits; Staff*: staff tasks; ...).
type Activities struct {
	duration *prometheus.HistogramVec
	mu       sync.Mutex
	ran      map[string]int64 // executions by activity, any outcome
}

// NewActivities makes the activity metrics.
func NewActivities() *Activities {
	return &Activities{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "huabu_activity_duration_seconds",
		Help:    "Time each activity execution took, by activity (the step's work) and outcome (ok, error).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"activity", "outcome"}), ran: map[string]int64{}}
}

// Ran counts the executions of an activity on this worker (a benchmark
// shows with it how several workers shared a send).
func (a *Activities) Ran(activity string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ran[activity]
}

// Collectors are the metrics to register.
func (a *Activities) Collectors() []prometheus.Collector { return []prometheus.Collector{a.duration} }

// Interceptor is the worker interceptor that times activities.
func (a *Activities) Interceptor() interceptor.WorkerInterceptor { return &workerInterceptor{m: a} }

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	m *Activities
}

func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInterceptor{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, m: w.m}
}

type activityInterceptor struct {
	interceptor.ActivityInboundInterceptorBase
	m *Activities
}

func (a *activityInterceptor) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	start := time.Now()
	out, err := a.Next.ExecuteActivity(ctx, in)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	name := activity.GetInfo(ctx).ActivityType.Name
	a.m.duration.WithLabelValues(name, outcome).Observe(time.Since(start).Seconds())
	a.m.mu.Lock()
	a.m.ran[name]++
	a.m.mu.Unlock()
	return out, err
}

// Snapshotter is what the store collector reads.
type Snapshotter interface {
	Metrics(ctx context.Context, since store.FinishedCursor) (store.MetricsSnapshot, error)
	EntryLags(ctx context.Context, afterMs, afterID int64, limit int) ([]store.EntryLag, error)
}

// Store reads the store's numbers at each scrape.
type Store struct {
	st  Snapshotter
	log *slog.Logger

	runsStarted, runsFinished, runsRunning *prometheus.Desc
	stepEntered                            *prometheus.Desc
	cohortsWaiting, usersWaiting           *prometheus.Desc
	staffTasks                             *prometheus.Desc
	up                                     *prometheus.Desc

	mu              sync.Mutex // one scrape at a time reads the store
	lag             *prometheus.HistogramVec
	lagAfter, lagID int64 // windows started up to here are observed
	// Step entries of ended runs, added up as they end (they never change).
	finished       map[[2]string]int64
	finishedCursor store.FinishedCursor
}

// NewStore makes the collector; entry lags are observed for windows
// started from now on (a restart does not count the past again).
func NewStore(st Snapshotter, log *slog.Logger) *Store {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Store{st: st, log: log,
		runsStarted:    d("huabu_runs_started_total", "Runs started, by canvas.", "canvas"),
		runsFinished:   d("huabu_runs_finished_total", "Runs that ended, by canvas and state (completed, failed, cancelled, ...).", "canvas", "state"),
		runsRunning:    d("huabu_runs_running", "Runs going on now (waiting included), by canvas.", "canvas"),
		stepEntered:    d("huabu_step_entered_total", "Users who entered each step, by canvas and step (its rate is the step's throughput).", "canvas", "step"),
		cohortsWaiting: d("huabu_cohorts_waiting", "Cohorts of running runs asleep now, by canvas and what they wait for (time: a wait or quiet hours; event: a wait for an event).", "canvas", "for"),
		usersWaiting:   d("huabu_users_waiting", "Users in those cohorts, by canvas and what they wait for.", "canvas", "for"),
		staffTasks:     d("huabu_staff_tasks", "Staff tasks of running runs by canvas and state: open, not_done (deadline passed), on_time, late, failed, unknown, recorded (outbox), new, pending.", "canvas", "state"),
		up:             d("huabu_metrics_store_up", "1 when the last scrape could read the store's numbers."),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "huabu_event_entry_lag_seconds",
			Help:    "From an event's acceptance to the start of the run it entered, by canvas: the first event of each entry window (the longest wait in it).",
			Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 2, 5, 10, 30, 60},
		}, []string{"canvas"}),
		lagAfter: time.Now().UnixMilli(),
		finished: map[[2]string]int64{},
	}
}

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.runsStarted, s.runsFinished, s.runsRunning, s.stepEntered, s.cohortsWaiting, s.usersWaiting, s.staffTasks, s.up} {
		ch <- d
	}
	s.lag.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := 1.0
	if err := s.observeLags(ctx); err != nil {
		s.log.Warn("metrics: entry lags", "err", err)
		up = 0
	}
	s.lag.Collect(ch)
	snap, err := s.st.Metrics(ctx, s.finishedCursor)
	if err != nil {
		s.log.Warn("metrics: store", "err", err)
		ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, up)
	started := map[string]float64{}
	running := map[string]float64{}
	for k, n := range snap.Runs {
		canvas, state := k[0], k[1]
		started[canvas] += float64(n)
		if state == store.RunRunning {
			running[canvas] += float64(n)
			continue
		}
		ch <- prometheus.MustNewConstMetric(s.runsFinished, prometheus.CounterValue, float64(n), canvas, state)
	}
	for canvas, n := range started {
		ch <- prometheus.MustNewConstMetric(s.runsStarted, prometheus.CounterValue, n, canvas)
		ch <- prometheus.MustNewConstMetric(s.runsRunning, prometheus.GaugeValue, running[canvas], canvas)
	}
	for k, n := range snap.FinishedEntries {
		s.finished[k] += n
	}
	s.finishedCursor = snap.Cursor
	entered := map[[2]string]int64{}
	for k, n := range s.finished {
		entered[k] += n
	}
	for k, n := range snap.RunningEntries {
		entered[k] += n
	}
	for k, n := range entered {
		ch <- prometheus.MustNewConstMetric(s.stepEntered, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	for k, n := range snap.CohortsWaiting {
		ch <- prometheus.MustNewConstMetric(s.cohortsWaiting, prometheus.GaugeValue, float64(n), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(s.usersWaiting, prometheus.GaugeValue, float64(snap.UsersWaiting[k]), k[0], k[1])
	}
	for k, n := range snap.StaffTasks {
		ch <- prometheus.MustNewConstMetric(s.staffTasks, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// observeLags adds the entry windows started since the last scrape.
func (s *Store) observeLags(ctx context.Context) error {
	for {
		lags, err := s.st.EntryLags(ctx, s.lagAfter, s.lagID, 5000)
		if err != nil {
			return err
		}
		for _, l := range lags {
			s.lag.WithLabelValues(l.Canvas).Observe(l.Lag.Seconds())
			s.lagAfter, s.lagID = l.StartedAt, l.WindowID
		}
		if len(lags) < 5000 {
			return nil
		}
	}
}
