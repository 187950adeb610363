-- A step inside a loop is entered once per visit, and each visit sends:
-- the delivery ledger and the step entries are keyed by visit (0 for the
-- first), so a later visit is neither skipped as "already sent" nor counted
-- over the first one. Rows written before keep visit 0, which is what they were.
CREATE TABLE deliveries_by_visit (
  run_id       BIGINT NOT NULL,
  step_id      TEXT COLLATE "C" NOT NULL,
  visit        BIGINT NOT NULL DEFAULT 0,   -- earlier visits of the same users to this step in this run
  uid          BIGINT NOT NULL,
  channel      TEXT COLLATE "C" NOT NULL,
  state        TEXT COLLATE "C" NOT NULL,              -- pending | sent | failed | unknown | suppressed
  batch        BIGINT NOT NULL,           -- hash of the attempt that claimed the row
  reason       TEXT COLLATE "C" NOT NULL DEFAULT '',
  provider_ref TEXT COLLATE "C" NOT NULL DEFAULT '',
  updated_at   BIGINT NOT NULL,
  PRIMARY KEY (run_id, step_id, visit, uid)
);
INSERT INTO deliveries_by_visit (run_id, step_id, visit, uid, channel, state, batch, reason, provider_ref, updated_at)
  SELECT run_id, step_id, 0, uid, channel, state, batch, reason, provider_ref, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_visit RENAME TO deliveries;

CREATE TABLE step_entries_by_visit (
  run_id    BIGINT NOT NULL,
  step_id   TEXT COLLATE "C" NOT NULL,
  visit     BIGINT NOT NULL DEFAULT 0,
  cohort_id BIGINT NOT NULL,
  count     BIGINT NOT NULL,
  PRIMARY KEY (run_id, step_id, visit, cohort_id)
);
INSERT INTO step_entries_by_visit (run_id, step_id, visit, cohort_id, count)
  SELECT run_id, step_id, 0, cohort_id, count FROM step_entries;
DROP TABLE step_entries;
ALTER TABLE step_entries_by_visit RENAME TO step_entries;
