-- A step inside a loop is entered once per visit, and each visit sends:
-- the delivery ledger and the step entries are keyed by visit (0 for the
-- first), so a later visit is neither skipped as "already sent" nor counted
-- over the first one. Rows written before keep visit 0, which is what they were.
CREATE TABLE deliveries_by_visit (
  run_id       INTEGER NOT NULL,
  step_id      TEXT NOT NULL,
  visit        INTEGER NOT NULL DEFAULT 0,   -- earlier visits of the same users to this step in this run
  uid          INTEGER NOT NULL,
  channel      TEXT NOT NULL,
  state        TEXT NOT NULL,              -- pending | sent | failed | unknown | suppressed
  batch        INTEGER NOT NULL,           -- hash of the attempt that claimed the row
  reason       TEXT NOT NULL DEFAULT '',
  provider_ref TEXT NOT NULL DEFAULT '',
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, visit, uid)
) WITHOUT ROWID;
INSERT INTO deliveries_by_visit (run_id, step_id, visit, uid, channel, state, batch, reason, provider_ref, updated_at)
  SELECT run_id, step_id, 0, uid, channel, state, batch, reason, provider_ref, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_visit RENAME TO deliveries;

CREATE TABLE step_entries_by_visit (
  run_id    INTEGER NOT NULL,
  step_id   TEXT NOT NULL,
  visit     INTEGER NOT NULL DEFAULT 0,
  cohort_id INTEGER NOT NULL,
  count     INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, visit, cohort_id)
) WITHOUT ROWID;
INSERT INTO step_entries_by_visit (run_id, step_id, visit, cohort_id, count)
  SELECT run_id, step_id, 0, cohort_id, count FROM step_entries;
DROP TABLE step_entries;
ALTER TABLE step_entries_by_visit RENAME TO step_entries;
