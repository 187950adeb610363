-- A staff_task step can be reached by several cohorts of one run at
-- different times (branches that meet at it). Each cohort's customers get
-- their own tasks, tracked and finished on their own: the step execution's
-- cohort is part of the task's key. Rows written before this are cohort 0,
-- which the activities treat as belonging to whichever cohort asks (the old
-- behaviour, for runs in flight across the upgrade).
CREATE TABLE staff_tasks_v2 (
  run_id      INTEGER NOT NULL,
  step_id     TEXT NOT NULL,
  cohort      INTEGER NOT NULL DEFAULT 0,
  staff       TEXT NOT NULL,
  part        INTEGER NOT NULL DEFAULT 0,
  canvas_id   TEXT NOT NULL,
  kind        TEXT NOT NULL,
  state       TEXT NOT NULL,
  ref         TEXT NOT NULL DEFAULT '',
  attempt     TEXT NOT NULL DEFAULT '',
  pending_at  INTEGER NOT NULL DEFAULT 0,
  customers   INTEGER NOT NULL DEFAULT 0,
  name        TEXT NOT NULL DEFAULT '',
  grid        TEXT NOT NULL DEFAULT '',
  leader      TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL DEFAULT 0,
  deadline    INTEGER NOT NULL DEFAULT 0,
  notified_at INTEGER NOT NULL DEFAULT 0,
  reminders   TEXT NOT NULL DEFAULT '[]',
  escalated_at INTEGER NOT NULL DEFAULT 0,
  done_at     INTEGER NOT NULL DEFAULT 0,
  result      TEXT NOT NULL DEFAULT '',
  reason      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, step_id, cohort, staff, part)
) WITHOUT ROWID;
INSERT INTO staff_tasks_v2 (run_id, step_id, cohort, staff, part, canvas_id, kind, state, ref, attempt, pending_at, customers, name, grid, leader,
    created_at, deadline, notified_at, reminders, escalated_at, done_at, result, reason)
  SELECT run_id, step_id, 0, staff, part, canvas_id, kind, state, ref, attempt, pending_at, customers, name, grid, leader,
    created_at, deadline, notified_at, reminders, escalated_at, done_at, result, reason FROM staff_tasks;
DROP TABLE staff_tasks;
ALTER TABLE staff_tasks_v2 RENAME TO staff_tasks;
CREATE INDEX staff_tasks_canvas ON staff_tasks(canvas_id, run_id);
CREATE INDEX staff_tasks_ref ON staff_tasks(ref) WHERE ref != '';

ALTER TABLE staff_task_customers ADD COLUMN cohort INTEGER NOT NULL DEFAULT 0;
DROP INDEX staff_task_customers_task;
CREATE INDEX staff_task_customers_task ON staff_task_customers(run_id, step_id, cohort, staff, part, external_userid);
