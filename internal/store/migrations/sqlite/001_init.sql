CREATE TABLE profiles (
  uid        INTEGER PRIMARY KEY,          -- dense internal id, used in cohort pages
  id         TEXT NOT NULL UNIQUE,         -- the userId apps send
  doc        TEXT NOT NULL,                -- the user document: attributes, tags, traits, rfm
  updated_at INTEGER NOT NULL              -- unix ms
);

CREATE TABLE staff (
  userid  TEXT PRIMARY KEY,                -- WeCom userid
  name    TEXT NOT NULL DEFAULT '',
  grid    TEXT NOT NULL DEFAULT '',
  leader  TEXT NOT NULL DEFAULT '',
  doc     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE plans (
  hash       TEXT PRIMARY KEY,
  canvas_id  TEXT NOT NULL,
  plan       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE canvases (
  id          TEXT PRIMARY KEY,
  plan_hash   TEXT NOT NULL REFERENCES plans(hash),
  source      TEXT NOT NULL DEFAULT '',    -- file it was deployed from
  deployed_at INTEGER NOT NULL,
  active      INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE runs (
  id          INTEGER PRIMARY KEY,
  workflow_id TEXT NOT NULL UNIQUE,        -- the Temporal workflow that runs it
  canvas_id   TEXT NOT NULL,
  plan_hash   TEXT NOT NULL,
  trigger     TEXT NOT NULL,
  state       TEXT NOT NULL,               -- running | completed | failed
  entered     INTEGER NOT NULL DEFAULT 0,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER,
  error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_canvas ON runs(canvas_id, id);

CREATE TABLE cohorts (
  id         INTEGER PRIMARY KEY,
  key        TEXT NOT NULL UNIQUE,         -- deterministic, so a retried activity finds its cohort again
  run_id     INTEGER NOT NULL,
  step_id    TEXT NOT NULL,
  parent_id  INTEGER NOT NULL DEFAULT 0,
  size       INTEGER NOT NULL DEFAULT 0,
  page_span  INTEGER NOT NULL DEFAULT 0,   -- page numbers are in [0, page_span)
  wake_at    INTEGER NOT NULL DEFAULT 0,
  sealed     INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

CREATE TABLE cohort_pages (
  cohort_id INTEGER NOT NULL,
  page      INTEGER NOT NULL,
  n         INTEGER NOT NULL,
  min_uid   INTEGER NOT NULL,              -- pages of a cohort hold increasing, disjoint uid ranges,
  max_uid   INTEGER NOT NULL,              -- so one indexed lookup answers "is this user in the cohort"
  members   BLOB NOT NULL,
  PRIMARY KEY (cohort_id, page)
) WITHOUT ROWID;
CREATE INDEX cohort_pages_uid ON cohort_pages(cohort_id, max_uid);

CREATE TABLE step_entries (
  run_id    INTEGER NOT NULL,
  step_id   TEXT NOT NULL,
  cohort_id INTEGER NOT NULL,
  count     INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, cohort_id)
) WITHOUT ROWID;

CREATE TABLE deliveries (
  run_id       INTEGER NOT NULL,
  step_id      TEXT NOT NULL,
  uid          INTEGER NOT NULL,
  channel      TEXT NOT NULL,
  state        TEXT NOT NULL,              -- pending | sent | failed | unknown | suppressed
  batch        INTEGER NOT NULL,           -- hash of the attempt that claimed the row
  reason       TEXT NOT NULL DEFAULT '',
  provider_ref TEXT NOT NULL DEFAULT '',
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, uid)
) WITHOUT ROWID;

CREATE TABLE outbox (
  id         INTEGER PRIMARY KEY,
  canvas_id  TEXT NOT NULL,
  run_id     INTEGER NOT NULL,
  step_id    TEXT NOT NULL,
  channel    TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  address    TEXT NOT NULL,
  sender     TEXT NOT NULL DEFAULT '',
  message    TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX outbox_canvas ON outbox(canvas_id, id);

CREATE TABLE exits (
  run_id  INTEGER NOT NULL,
  uid     INTEGER NOT NULL,
  step_id TEXT NOT NULL,
  reason  TEXT NOT NULL,
  at      INTEGER NOT NULL,
  PRIMARY KEY (run_id, uid)
) WITHOUT ROWID;

-- Who entered which run: re-entry rules, and the runs an event may concern
-- (exits, goals, waits for an event).
CREATE TABLE entries (
  canvas_id  TEXT NOT NULL,
  uid        INTEGER NOT NULL,
  run_id     INTEGER NOT NULL,
  entered_at INTEGER NOT NULL,
  PRIMARY KEY (canvas_id, uid, run_id)
) WITHOUT ROWID;
CREATE INDEX entries_uid ON entries(uid, run_id);

CREATE TABLE conversions (
  run_id INTEGER NOT NULL,
  uid    INTEGER NOT NULL,
  at     INTEGER NOT NULL,
  PRIMARY KEY (run_id, uid)
) WITHOUT ROWID;

-- Cohorts that finished (an exit step, or the end of their path), counted
-- once per cohort; per-user rows in exits are only for users who leave early.
CREATE TABLE cohort_exits (
  run_id    INTEGER NOT NULL,
  step_id   TEXT NOT NULL,
  cohort_id INTEGER NOT NULL,
  reason    TEXT NOT NULL,
  count     INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, cohort_id)
) WITHOUT ROWID;
