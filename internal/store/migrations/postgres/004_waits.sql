-- Cohorts waiting for an event, and the users who sent it in time.
CREATE TABLE waits (
  cohort_id   BIGINT PRIMARY KEY,
  run_id      BIGINT NOT NULL,
  canvas_id   TEXT COLLATE "C" NOT NULL,
  plan_hash   TEXT COLLATE "C" NOT NULL,
  step_id     TEXT COLLATE "C" NOT NULL,
  event       TEXT COLLATE "C" NOT NULL,
  workflow_id TEXT COLLATE "C" NOT NULL,             -- who to signal
  deadline    BIGINT NOT NULL
);
CREATE INDEX waits_run ON waits(run_id, event);

CREATE TABLE arrivals (
  cohort_id  BIGINT NOT NULL,           -- the waiting cohort
  uid        BIGINT NOT NULL,
  at         BIGINT NOT NULL,
  collected  BIGINT NOT NULL DEFAULT 0, -- the child cohort that took them on, once collected
  PRIMARY KEY (cohort_id, uid)
);
