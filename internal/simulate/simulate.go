package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/app"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
	"github.com/huabu/huabu/internal/triggers"
)

// Options describe one simulation.
type Options struct {
	Config *config.Config
	// File and Source are the canvas: its YAML, compiled against Config.
	File   string
	Source []byte
	From   time.Time     // virtual start
	For    time.Duration // how long to simulate (e.g. 14 days)
	// Profiles are identify payloads (JSONL) or CSV, as `huabu import
	// profiles` reads them; Staff is the staff directory. Events are track
	// payloads with timestamps: those before From are history (stored,
	// traits computed, not routed, as `huabu import events` does), those in
	// [From, From+For) are replayed at their times; later ones are left out.
	Profiles, Staff, Events io.Reader
	// Store, instead of Profiles and Staff, is a live store to copy (read
	// only, consistently): its profiles, staff, event history, computed
	// traits, frequency-cap touches and earlier entries all apply.
	Store string
	// TempDir holds the scratch store (default: the system's).
	TempDir string
	Logger  *slog.Logger
	// Inspect, when set, is called with the scratch store before it is
	// removed (tests compare it with a live store).
	Inspect func(context.Context, *store.SQLite) error
}

// ErrInput marks problems with the canvas or the input files.
var ErrInput = errors.New("simulation input")

// Run simulates a canvas and returns what happened.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	if opts.For <= 0 {
		return nil, fmt.Errorf("%w: the simulated period must be positive", ErrInput)
	}
	if opts.From.IsZero() {
		opts.From = time.Now().Truncate(time.Minute)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &sim{opts: opts, clock: &clock{at: opts.From}, end: opts.From.Add(opts.For), entered: map[entryKey]bool{}}
	defer s.close()
	if err := s.compile(); err != nil {
		return nil, err
	}
	if err := s.scratch(ctx); err != nil {
		return nil, err
	}
	if err := s.engine(ctx); err != nil {
		return nil, err
	}
	if err := s.batches(ctx); err != nil {
		return nil, err
	}
	if err := s.drive(ctx); err != nil {
		return nil, err
	}
	res, err := s.result(ctx)
	if err != nil {
		return nil, err
	}
	if s.opts.Inspect != nil {
		if err := s.opts.Inspect(ctx, s.st); err != nil {
			return nil, err
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// sim is one simulation.
type sim struct {
	opts  Options
	clock *clock
	end   time.Time
	loc   *time.Location

	comp *canvases.Compiler
	plan *canvases.Plan
	dir  string
	st   *store.SQLite
	// firstRun is the first run id of the simulation: a copied store has
	// runs of its own.
	firstRun int64

	traits   *traits.Engine
	traitsMu sync.Mutex
	rfmAt    time.Time
	rfmReads rfmReads

	acts      *activities.Activities
	staffActs *activities.StaffActivities
	router    *triggers.Router
	starts    *starter
	cursor    int64       // the last event routed
	skipped   []time.Time // schedule firings skipped: the last run still going

	// live are the events of the period, in time order: replay those some
	// plan reacts to, in batches the router takes together, and quiet the
	// others (stored late, before the traits they count are read).
	live    []store.Message
	replay  []batch
	quiet   []store.Message
	quietMu sync.Mutex
	history int // events stored as history
	later   int // events after the period, left out

	entriesMu sync.Mutex
	entries   []entryRecord
	entered   map[entryKey]bool
}

func (s *sim) close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// clock is the simulation's time: From until the test environment starts,
// then the environment's virtual clock.
type clock struct {
	mu  sync.RWMutex
	at  time.Time
	env interface{ Now() time.Time }
}

func (c *clock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.env != nil {
		return c.env.Now()
	}
	return c.at
}

func (c *clock) use(env interface{ Now() time.Time }) {
	c.mu.Lock()
	c.env = env
	c.mu.Unlock()
}

// compile builds a compiler whose conditions read the virtual clock and
// compiles the canvas with it.
func (s *sim) compile() error {
	cfg := s.opts.Config
	opts, err := cfg.CompilerOptions()
	if err != nil {
		return err
	}
	opts.Now = s.clock.Now
	if s.comp, err = canvases.NewCompiler(opts); err != nil {
		return err
	}
	if s.loc, err = canvases.LoadLocation(s.comp.Options().Timezone); err != nil {
		return err
	}
	plan, problems := s.comp.Compile(s.opts.File, s.opts.Source)
	if problems.HasErrors() {
		return fmt.Errorf("%w: %w", ErrInput, problems.Errors())
	}
	s.plan = plan
	s.rfmReads = rfmReadsOf(plan, cfg.Tags)
	return nil
}

// rfmReads says where a plan can see RFM scores: in its audience, or in
// its steps and event conditions (directly, or through auto-tags whose
// rules read them). RFM quintiles are recomputed only before such reads.
type rfmReads struct{ audience, steps bool }

func rfmReadsOf(p *canvases.Plan, tags map[string]string) rfmReads {
	tagsReadRFM := false
	for _, rule := range tags {
		tagsReadRFM = tagsReadRFM || strings.Contains(rule, "rfm")
	}
	reads := func(src string) bool {
		return strings.Contains(src, "rfm") || tagsReadRFM && strings.Contains(src, "tags")
	}
	rest, _ := json.Marshal(struct {
		Trigger canvases.Trigger
		Exit    *canvases.OnEvent
		Goal    *canvases.Goal
		Steps   []*canvases.Step
	}{p.Trigger, p.Exit, p.Goal, p.Steps})
	return rfmReads{audience: reads(p.Audience), steps: reads(string(rest))}
}

// scratch creates the scratch store and fills it.
func (s *sim) scratch(ctx context.Context) error {
	var err error
	if s.dir, err = os.MkdirTemp(s.opts.TempDir, "huabu-simulate-"); err != nil {
		return err
	}
	path := filepath.Join(s.dir, "huabu.db")
	if s.opts.Store != "" {
		if err := store.Snapshot(ctx, s.opts.Store, path); err != nil {
			return fmt.Errorf("%w: copying the store %s: %w", ErrInput, s.opts.Store, err)
		}
	}
	if s.st, err = store.OpenSQLite(ctx, path); err != nil {
		return err
	}
	s.st.SetClock(s.clock.Now)
	if s.firstRun, err = s.st.NextRunID(ctx); err != nil {
		return err
	}
	// Only the simulated canvas is deployed: a copied store's canvases
	// must not take the replayed events.
	deployed, err := s.st.Canvases(ctx)
	if err != nil {
		return err
	}
	for _, c := range deployed {
		if err := s.st.DeactivateCanvas(ctx, c.ID); err != nil {
			return err
		}
	}
	if _, err := s.st.SavePlan(ctx, s.plan.ID, s.plan.Hash, s.plan.JSON(), s.opts.File); err != nil {
		return err
	}
	schema, err := s.opts.Config.Schema()
	if err != nil {
		return err
	}
	if s.opts.Profiles != nil {
		sum, err := ingest.ImportProfiles(ctx, s.st, schema, s.opts.Profiles, ingest.Options{})
		if err := rejected("profiles", sum.Rejected, err); err != nil {
			return err
		}
	}
	if s.opts.Staff != nil {
		sum, err := ingest.ImportStaff(ctx, s.st, s.opts.Staff)
		if err := rejected("staff", sum.Rejected, err); err != nil {
			return err
		}
	}
	if s.opts.Events != nil {
		if err := s.events(ctx, schema); err != nil {
			return err
		}
	}
	if s.traits, err = traits.New(s.opts.Config, s.st, s.opts.Logger); err != nil {
		return err
	}
	if !s.traits.Enabled() {
		s.traits = nil
		return nil
	}
	if err := s.traits.Sync(ctx); err != nil {
		return err
	}
	return s.traitsAll(ctx)
}

// rejected turns an import's rejected lines into one error naming them.
func rejected(what string, rejects []ingest.Reject, err error) error {
	if len(rejects) == 0 {
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInput, what, err)
		}
		return nil
	}
	lines := make([]string, 0, min(len(rejects), 10))
	for _, r := range rejects[:min(len(rejects), 10)] {
		lines = append(lines, r.String())
	}
	more := ""
	if len(rejects) > 10 {
		more = fmt.Sprintf("\n(and %d more)", len(rejects)-10)
	}
	return fmt.Errorf("%w: %s: %d rejected line(s):\n%s%s", ErrInput, what, len(rejects), strings.Join(lines, "\n"), more)
}

// batch is events the router takes together: those within one entry
// window of the first, as the live feed hands them over.
type batch struct {
	at   time.Time
	msgs []store.Message
}

// events reads the events file: history is stored now, the period's
// events are kept for replay.
func (s *sim) events(ctx context.Context, schema canvases.Schema) error {
	var parsed capture
	sum, err := ingest.ImportEvents(ctx, &parsed, ingest.NewValidator(schema), s.opts.Events, ingest.Options{})
	if err := rejected("events", sum.Rejected, err); err != nil {
		return err
	}
	var history, live []store.Message
	for _, m := range parsed.msgs {
		switch {
		case m.Timestamp.Before(s.opts.From):
			history = append(history, m)
		case m.Timestamp.Before(s.end):
			live = append(live, m)
		default:
			s.later++
		}
	}
	if len(history) > 0 {
		if _, err := s.st.Ingest(ctx, history, store.IngestOptions{MarkDue: true, ReceivedAt: s.opts.From}); err != nil {
			return err
		}
		s.history = len(history)
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].Timestamp.Before(live[j].Timestamp) })
	s.live = live
	return nil
}

// batches groups the period's events. Those some plan reacts to (a
// trigger, an exit, a goal, a wait) are routed in batches, each at its
// time, with those within one entry window of the first together, as the
// live feed hands them over. The others can change only computed traits,
// so they are stored when something next reads profiles or routes (never
// before their time, so no trait counts an event from its future).
func (s *sim) batches(ctx context.Context) error {
	names, err := s.router.RoutedEvents(ctx)
	if err != nil {
		return err
	}
	routed := map[string]bool{}
	for _, n := range names {
		routed[n] = true
	}
	window := s.router.Window()
	for _, m := range s.live {
		if names != nil && !routed[m.Name] {
			s.quiet = append(s.quiet, m)
			continue
		}
		if n := len(s.replay); n > 0 && m.Timestamp.Sub(s.replay[n-1].at) < window {
			s.replay[n-1].msgs = append(s.replay[n-1].msgs, m)
			continue
		}
		s.replay = append(s.replay, batch{at: m.Timestamp, msgs: []store.Message{m}})
	}
	return nil
}

// storeQuiet stores the events no plan reacts to that have happened by now.
func (s *sim) storeQuiet(ctx context.Context) error {
	s.quietMu.Lock()
	defer s.quietMu.Unlock()
	now := s.clock.Now()
	n := 0
	for n < len(s.quiet) && !s.quiet[n].Timestamp.After(now) {
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := s.st.Ingest(ctx, s.quiet[:n], store.IngestOptions{Realtime: true, MarkDue: true, ReceivedAt: now}); err != nil {
		return err
	}
	s.quiet = s.quiet[n:]
	return nil
}

// capture is an ingest.EventStore that keeps the parsed messages: the
// events file is checked line by line as `huabu import events` checks it,
// then stored at the right (virtual) time.
type capture struct{ msgs []store.Message }

func (c *capture) Ingest(_ context.Context, msgs []store.Message, _ store.IngestOptions) (store.IngestResult, error) {
	c.msgs = append(c.msgs, msgs...)
	return store.IngestResult{Stored: len(msgs)}, nil
}

// Computed traits, RFM scores and auto-tags are kept current the way a
// reader of the live store finds them: the live engine recomputes a user
// within a minute of new events or of a window sliding, so whoever reads a
// profile at a virtual time gets it recomputed as of then, if it is due.
// Only the users read are recomputed (the live engine recomputes everyone,
// but nobody else is looked at), and RFM quintiles at most hourly, as live.

// traitsAll recomputes every user due now (the start of the simulation:
// everything imported is due).
func (s *sim) traitsAll(ctx context.Context) error {
	if s.traits == nil {
		return nil
	}
	s.traitsMu.Lock()
	defer s.traitsMu.Unlock()
	if _, err := s.traits.RefreshDue(ctx); err != nil {
		return err
	}
	return s.rfmCurrent(ctx)
}

// traitsOf brings the traits of uids up to date at the virtual time, and
// with rfm the RFM quintiles too (an hourly, whole-store recomputation,
// done only for reads that can see the scores).
func (s *sim) traitsOf(ctx context.Context, uids []int64, rfm bool) error {
	if s.traits == nil || len(uids) == 0 {
		return nil
	}
	if err := s.storeQuiet(ctx); err != nil {
		return err
	}
	s.traitsMu.Lock()
	defer s.traitsMu.Unlock()
	if rfm {
		if err := s.rfmCurrent(ctx); err != nil {
			return err
		}
	}
	stale, err := s.st.TraitsStale(ctx, uids, s.clock.Now())
	if err != nil || len(stale) == 0 {
		return err
	}
	return s.traits.Update(ctx, stale)
}

// rfmCurrent recomputes RFM quintiles when the last time is an hour ago.
func (s *sim) rfmCurrent(ctx context.Context) error {
	now := s.clock.Now()
	if !s.rfmAt.IsZero() && now.Sub(s.rfmAt) < time.Hour {
		return nil
	}
	s.rfmAt = now
	return s.traits.RefreshRFM(ctx)
}

// engine builds the activities and the router the simulation runs: the
// worker's, over the scratch store, with every channel the outbox.
func (s *sim) engine(ctx context.Context) error {
	set, err := channels.NewSet(nil, nil, channels.Deps{Outbox: s.st, Now: s.clock.Now, Logger: s.opts.Logger})
	if err != nil {
		return err
	}
	engine := engineStore{SQLite: s.st, sim: s}
	s.acts = &activities.Activities{
		Store: engine, Channels: set, Compiler: s.comp, Logger: s.opts.Logger,
		Policy: app.PolicyOf(s.opts.Config.Policy), Now: s.clock.Now,
	}
	s.staffActs = &activities.StaffActivities{Engine: s.acts, Store: engine, Directory: engine}
	s.starts = &starter{canvasID: s.plan.ID}
	s.router = triggers.New(triggers.Options{
		Store: s.st, Runs: s.starts, Compiler: s.comp, Logger: s.opts.Logger,
		Window: s.opts.Config.Triggers.EntryWindow(), Now: s.clock.Now,
	})
	return s.router.Refresh(ctx)
}

// engineStore is the scratch store as the activities see it: profiles are
// read with computed traits current at the virtual time, and each cohort
// entering a step is noted with that time (the store keeps no time for
// it; the paths need one).
type engineStore struct {
	*store.SQLite
	sim *sim
}

// ScanProfiles is how Enter reads everyone for the audience.
func (e engineStore) ScanProfiles(ctx context.Context, after int64, limit int) ([]store.ProfileRow, error) {
	rows, err := e.SQLite.ScanProfiles(ctx, after, limit)
	if err != nil || len(rows) == 0 {
		return rows, err
	}
	uids := make([]int64, len(rows))
	for i, r := range rows {
		uids[i] = r.UID
	}
	if err := e.sim.traitsOf(ctx, uids, e.sim.rfmReads.audience); err != nil {
		return nil, err
	}
	return e.SQLite.Profiles(ctx, uids)
}

// Profiles is how every other activity reads profiles: named entries
// (the audience again), branches, messages, policy.
func (e engineStore) Profiles(ctx context.Context, uids []int64) ([]store.ProfileRow, error) {
	// Named users are checked against the audience only when an event
	// trigger enters them.
	named := e.sim.plan.Trigger.Kind == canvases.TriggerEvent && e.sim.rfmReads.audience
	if err := e.sim.traitsOf(ctx, uids, named || e.sim.rfmReads.steps); err != nil {
		return nil, err
	}
	return e.SQLite.Profiles(ctx, uids)
}

func (e engineStore) RecordStepEntry(ctx context.Context, runID int64, stepID string, visit int, cohortID, count int64) error {
	if err := e.SQLite.RecordStepEntry(ctx, runID, stepID, visit, cohortID, count); err != nil {
		return err
	}
	e.sim.noteEntry(entryKey{run: runID, step: stepID, visit: visit, cohort: cohortID})
	return nil
}

// BeginRunEntry records the entry cohort's entry into the first step too
// (a run of named users, BeginEnter): noted as RecordStepEntry's.
func (e engineStore) BeginRunEntry(ctx context.Context, in store.RunEntry) (store.Run, store.Cohort, error) {
	run, cohort, err := e.SQLite.BeginRunEntry(ctx, in)
	if err == nil && in.RecordStep && cohort.Size > 0 {
		e.sim.noteEntry(entryKey{run: run.ID, step: in.StepID, cohort: cohort.ID})
	}
	return run, cohort, err
}

// entryKey is a cohort entering a step of a run, on a visit (loops).
type entryKey struct {
	run    int64
	step   string
	visit  int
	cohort int64
}

// entryRecord is an entry with its virtual time and its place in order.
type entryRecord struct {
	entryKey
	at  time.Time
	seq int
}

func (s *sim) noteEntry(k entryKey) {
	at := s.clock.Now().Truncate(time.Millisecond) // as precise as the store's times
	s.entriesMu.Lock()
	defer s.entriesMu.Unlock()
	if s.entered[k] {
		return // a retried EnterStep
	}
	s.entered[k] = true
	s.entries = append(s.entries, entryRecord{entryKey: k, at: at, seq: len(s.entries)})
}
