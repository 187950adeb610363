package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// One user's way through the canvases, for the console's user page: the
// runs they entered, the steps they reached, every message the ledger holds
// for them, their exits and conversions. Every lookup goes through a key or
// an index (entries_uid, the ledger's primary key per step entered,
// cohort_pages_uid), so a user of a million-user run is found as fast as
// one of a ten-user run.

// JourneyRun is one run a user entered.
type JourneyRun struct {
	CanvasID  string
	RunID     int64
	PlanHash  string
	State     string
	EnteredAt time.Time
	// Steps are the steps the user reached in this run (step entries of
	// cohorts they were in).
	Steps      []JourneyStep
	Deliveries []JourneyDelivery
	Exit       *JourneyExit
	Converted  time.Time
}

// JourneyStep is a step a user reached, on which visit (0 the first).
type JourneyStep struct {
	StepID string
	Visit  int
}

// JourneyDelivery is a ledger row of the user: a message sent, failed,
// suppressed (with its reason) or unknown.
type JourneyDelivery struct {
	StepID      string
	Visit       int
	Channel     string
	State       string
	Reason      string
	ProviderRef string
	At          time.Time
	// Text is what the outbox recorded for it, when the channel was the
	// outbox (real providers' texts are not stored).
	Text string
}

// JourneyExit is how a user left a run early.
type JourneyExit struct {
	StepID string
	Reason string
	At     time.Time
}

// UserJourney returns the most recent runs (up to limit) a user entered,
// newest first, with what happened to them in each.
func (s *SQLite) UserJourney(ctx context.Context, uid int64, limit int) ([]JourneyRun, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT e.canvas_id, e.run_id, e.entered_at, coalesce(r.plan_hash, ''), coalesce(r.state, '')
		FROM entries e LEFT JOIN runs r ON r.id = e.run_id WHERE e.uid = ? ORDER BY e.run_id DESC LIMIT ?`, uid, limit)
	if err != nil {
		return nil, err
	}
	var runs []JourneyRun
	for rows.Next() {
		var j JourneyRun
		var at int64
		if err := rows.Scan(&j.CanvasID, &j.RunID, &at, &j.PlanHash, &j.State); err != nil {
			rows.Close()
			return nil, err
		}
		j.EnteredAt = time.UnixMilli(at)
		runs = append(runs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range runs {
		if err := s.journeyOfRun(ctx, uid, &runs[i]); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

func (s *SQLite) journeyOfRun(ctx context.Context, uid int64, j *JourneyRun) error {
	// Steps: the run's step entries whose cohort holds the user (one
	// indexed page each, once per cohort). Entries carry no time of their own.
	rows, err := s.r.QueryContext(ctx, `SELECT step_id, visit, cohort_id FROM step_entries WHERE run_id = ? ORDER BY cohort_id, step_id, visit`, j.RunID)
	if err != nil {
		return err
	}
	type entry struct {
		step   string
		visit  int
		cohort int64
	}
	var entries []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.step, &e.visit, &e.cohort); err != nil {
			rows.Close()
			return err
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	holds := map[int64]bool{}
	asked := map[int64]bool{}
	seen := map[JourneyStep]bool{}
	for _, e := range entries {
		if !asked[e.cohort] {
			in, err := s.InCohort(ctx, e.cohort, uid)
			if err != nil {
				return err
			}
			asked[e.cohort], holds[e.cohort] = true, in
		}
		st := JourneyStep{StepID: e.step, Visit: e.visit}
		if holds[e.cohort] && !seen[st] {
			seen[st] = true
			j.Steps = append(j.Steps, st)
		}
	}
	// Messages: a key lookup per step and visit the run entered.
	rows, err = s.r.QueryContext(ctx, `SELECT d.step_id, d.visit, d.channel, d.state, d.reason, d.provider_ref, d.updated_at
		FROM (SELECT DISTINCT step_id, visit FROM step_entries WHERE run_id = ?1) se
		JOIN deliveries d ON d.run_id = ?1 AND d.step_id = se.step_id AND d.visit = se.visit AND d.uid = ?2
		ORDER BY d.updated_at`, j.RunID, uid)
	if err != nil {
		return err
	}
	for rows.Next() {
		var d JourneyDelivery
		var at int64
		if err := rows.Scan(&d.StepID, &d.Visit, &d.Channel, &d.State, &d.Reason, &d.ProviderRef, &at); err != nil {
			rows.Close()
			return err
		}
		d.At = time.UnixMilli(at)
		j.Deliveries = append(j.Deliveries, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(j.Deliveries) > 0 {
		if err := s.outboxTexts(ctx, uid, j); err != nil {
			return err
		}
	}
	var e JourneyExit
	var at int64
	err = s.r.QueryRowContext(ctx, `SELECT step_id, reason, at FROM exits WHERE run_id = ? AND uid = ?`, j.RunID, uid).Scan(&e.StepID, &e.Reason, &at)
	switch {
	case err == nil:
		e.At = time.UnixMilli(at)
		j.Exit = &e
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	err = s.r.QueryRowContext(ctx, `SELECT at FROM conversions WHERE run_id = ? AND uid = ?`, j.RunID, uid).Scan(&at)
	switch {
	case err == nil:
		j.Converted = time.UnixMilli(at)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	return nil
}

// outboxTexts fills in what the outbox recorded for the user's sent
// messages of a run (the outbox is the channel without a provider: small).
func (s *SQLite) outboxTexts(ctx context.Context, uid int64, j *JourneyRun) error {
	rows, err := s.r.QueryContext(ctx, `SELECT step_id, message FROM outbox
		WHERE canvas_id = ? AND run_id = ? AND user_id = (SELECT id FROM profiles WHERE uid = ?) ORDER BY id`, j.CanvasID, j.RunID, uid)
	if err != nil {
		return err
	}
	defer rows.Close()
	texts := map[string]string{}
	for rows.Next() {
		var step, msg string
		if err := rows.Scan(&step, &msg); err != nil {
			return err
		}
		if _, ok := texts[step]; !ok {
			texts[step] = msg
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range j.Deliveries {
		if j.Deliveries[i].State == "sent" {
			j.Deliveries[i].Text = texts[j.Deliveries[i].StepID]
		}
	}
	return nil
}

// ProfileByPhone finds the profile with a phone number (migration 018's
// index).
func (s *SQLite) ProfileByPhone(ctx context.Context, phone string) (ProfileRow, error) {
	var p ProfileRow
	err := s.r.QueryRowContext(ctx, `SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.phone') = ? ORDER BY uid LIMIT 1`, phone).Scan(&p.UID, &p.ID, &p.Doc)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// RecentUserEvents is a user's newest events, newest first.
func (s *SQLite) RecentUserEvents(ctx context.Context, uid int64, limit int) ([]EventRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, uid, user_id, anonymous_id, type, name, properties, ts, received_at, realtime
		FROM events WHERE uid = ? ORDER BY ts DESC, id DESC LIMIT ?`, uid, limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}
