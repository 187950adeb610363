-- Cohorts waiting for an event, and the users who sent it in time.
CREATE TABLE waits (
  cohort_id   INTEGER PRIMARY KEY,
  run_id      INTEGER NOT NULL,
  canvas_id   TEXT NOT NULL,
  plan_hash   TEXT NOT NULL,
  step_id     TEXT NOT NULL,
  event       TEXT NOT NULL,
  workflow_id TEXT NOT NULL,             -- who to signal
  deadline    INTEGER NOT NULL
);
CREATE INDEX waits_run ON waits(run_id, event);

CREATE TABLE arrivals (
  cohort_id  INTEGER NOT NULL,           -- the waiting cohort
  uid        INTEGER NOT NULL,
  at         INTEGER NOT NULL,
  collected  INTEGER NOT NULL DEFAULT 0, -- the child cohort that took them on, once collected
  PRIMARY KEY (cohort_id, uid)
) WITHOUT ROWID;
