package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RunEntry is a run of named users (an entry window, a manual run with
// --profiles) that begins with its entry already decided: BeginRunEntry
// records the run and writes its entry cohort in one transaction (ADR 044).
type RunEntry struct {
	WorkflowID, CanvasID, PlanHash, Trigger string
	// StepID is the plan's first step: the entry cohort's step.
	StepID string
	// DecidedFor is the run the entry was decided for — the re-entry rules
	// leave out that run's own entries —, 0 when the workflow had no run
	// recorded yet.
	DecidedFor int64
	// Members are the users who enter, by uid.
	Members []int64
	// Pages is the page-number bound of the entry cohort (at least the
	// pages Members fill).
	Pages int64
	// RecordEntries writes the users' entry into the canvas (re-entry
	// rules, exits, goals and waits read it).
	RecordEntries bool
	// RecordStep records the cohort's entry into StepID (visit 0), as
	// RecordStepEntry does, when anyone entered.
	RecordStep bool
}

// RedecideEntryError says the workflow's run was recorded before (an earlier
// attempt) under another id than the entry was decided for: decide again
// with DecidedFor = RunID.
type RedecideEntryError struct{ RunID int64 }

func (e *RedecideEntryError) Error() string {
	return fmt.Sprintf("run %d was recorded before: decide its entry again", e.RunID)
}

// BeginRunEntry records the run of a workflow and its sealed entry cohort
// ("RUN/entry", as Enter names it), its pages, its users' entries, the run's
// entered count and, with RecordStep, the cohort's entry into the first step
// — one write transaction where BeginRun, CreateCohort, WriteEntryChunk,
// SealCohort, SetRunEntered and RecordStepEntry took six. Safe to run twice:
// when the workflow's entry cohort is sealed already it is returned as it
// is; when its run exists under an id other than DecidedFor, nothing is
// written and a *RedecideEntryError says which run to decide for.
func (s *SQLite) BeginRunEntry(ctx context.Context, e RunEntry) (Run, Cohort, error) {
	var run Run
	var cohort Cohort
	now := s.now().UnixMilli()
	// Shared (ADR 039) with the cohort's own lock taken once its id is
	// known, as WriteEntryChunk and SealCohort hold it: the run's row and
	// its new cohort's rows are this workflow's alone.
	err := s.sharedTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO runs (workflow_id, canvas_id, plan_hash, trigger, state, started_at) VALUES (?, ?, ?, ?, ?, ?)`,
			e.WorkflowID, e.CanvasID, e.PlanHash, e.Trigger, RunRunning, now)
		if err != nil {
			return err
		}
		added, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if run, err = s.runWhere(ctx, tx, `workflow_id = ?`, e.WorkflowID); err != nil {
			return err
		}
		key := fmt.Sprintf("%d/entry", run.ID)
		if added == 0 {
			cohort, err = s.cohortWhere(ctx, tx, `key = ?`, key)
			if err == nil && cohort.Sealed {
				return nil // an earlier attempt finished
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if run.ID != e.DecidedFor {
				return &RedecideEntryError{RunID: run.ID}
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO cohorts (key, run_id, step_id, parent_id, wake_at, created_at) VALUES (?, ?, ?, 0, 0, ?)`,
			key, run.ID, e.StepID, now); err != nil {
			return err
		}
		if cohort, err = s.cohortWhere(ctx, tx, `key = ?`, key); err != nil {
			return err
		}
		if err := s.lockObject(ctx, tx, "cohort", cohort.ID); err != nil {
			return err
		}
		if added == 0 { // an earlier attempt's unsealed cohort: replace what it wrote
			if _, err := tx.ExecContext(ctx, `DELETE FROM cohort_pages WHERE cohort_id = ?`, cohort.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE canvas_id = ? AND run_id = ?`, e.CanvasID, run.ID); err != nil {
				return err
			}
		}
		var pages []Page
		for start := 0; start < len(e.Members); start += PageSize {
			pages = append(pages, Page{No: int64(len(pages)), Members: e.Members[start:min(start+PageSize, len(e.Members))]})
		}
		if err := writePages(ctx, tx, cohort.ID, pages); err != nil {
			return err
		}
		if e.RecordEntries && len(e.Members) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO entries (canvas_id, uid, run_id, entered_at) SELECT ?, value, ?, ? FROM json_each(?)`,
				e.CanvasID, run.ID, now, idList(e.Members)); err != nil {
				return err
			}
		}
		if err := sealIn(ctx, tx, cohort.ID, e.Pages); err != nil {
			return err
		}
		if cohort, err = s.cohortWhere(ctx, tx, `id = ?`, cohort.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET entered = ? WHERE id = ?`, cohort.Size, run.ID); err != nil {
			return err
		}
		run.Entered = cohort.Size
		if e.RecordStep && cohort.Size > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO step_entries (run_id, step_id, visit, cohort_id, count) VALUES (?, ?, 0, ?, ?)`,
				run.ID, e.StepID, cohort.ID, cohort.Size); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Run{}, Cohort{}, err
	}
	return run, cohort, nil
}

// RecordedRunEntry returns the run a workflow recorded with BeginRunEntry and
// its sealed entry cohort, or ErrNotFound when there is none yet: a retried
// BeginEnter returns what its first attempt committed without asking the run
// gate again (a canvas stopped meanwhile must not orphan a begun run).
func (s *SQLite) RecordedRunEntry(ctx context.Context, workflowID string) (Run, Cohort, error) {
	run, err := s.RecordedRun(ctx, workflowID)
	if err != nil {
		return Run{}, Cohort{}, err
	}
	cohort, err := s.cohortWhere(ctx, s.r, `key = ?`, fmt.Sprintf("%d/entry", run.ID))
	if err != nil {
		return Run{}, Cohort{}, err
	}
	if !cohort.Sealed {
		return Run{}, Cohort{}, ErrNotFound
	}
	return run, cohort, nil
}

// RecordedRun returns the run a workflow recorded (BeginRun or
// BeginRunEntry) under its exact id "workflow/run", or ErrNotFound: a retried
// BeginRun returns it without asking the run gate again.
func (s *SQLite) RecordedRun(ctx context.Context, workflowID string) (Run, error) {
	return s.runWhere(ctx, s.r, `workflow_id = ?`, workflowID)
}
