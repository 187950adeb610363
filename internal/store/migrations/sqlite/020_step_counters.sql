-- Per-step counters maintained as ledger rows change state, exits and
-- conversions are written (ADR 020): reports and the console read a few rows
-- per step instead of grouping the whole ledger. kind is a delivery state
-- (pending, sent, failed, suppressed, unknown), 'exited' (visit 0) or
-- 'converted' (step '', visit 0: the run's conversions).
CREATE TABLE step_counters (
  run_id  INTEGER NOT NULL,
  step_id TEXT NOT NULL,
  visit   INTEGER NOT NULL,
  kind    TEXT NOT NULL,
  reason  TEXT NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, visit, kind, reason)
) WITHOUT ROWID;

-- Runs recorded before this migration: counted once from their rows.
INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
  SELECT run_id, step_id, visit, state, reason, count(*) FROM deliveries GROUP BY run_id, step_id, visit, state, reason;
INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
  SELECT run_id, step_id, 0, 'exited', reason, count(*) FROM exits GROUP BY run_id, step_id, reason;
INSERT INTO step_counters (run_id, step_id, visit, kind, reason, n)
  SELECT run_id, '', 0, 'converted', '', count(*) FROM conversions GROUP BY run_id;
