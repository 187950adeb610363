-- Entry windows of event-triggered canvases (ADR 009): the entries that
-- start one run together, persisted as they gather and before the run is
-- started, so a crash or a second router regroups nothing.
CREATE TABLE entry_windows (
  id          INTEGER PRIMARY KEY,
  canvas_id   TEXT NOT NULL,
  plan_hash   TEXT NOT NULL,
  first_event INTEGER NOT NULL,           -- the event that opened it
  last_event  INTEGER NOT NULL,           -- the newest event that entered it
  workflow_id TEXT NOT NULL UNIQUE,       -- derived from canvas and first_event
  users       INTEGER NOT NULL DEFAULT 0,
  closes_at   INTEGER NOT NULL,           -- unix ms: no entries join after it
  created_at  INTEGER NOT NULL,
  started_at  INTEGER NOT NULL DEFAULT 0, -- unix ms the run was started; 0: not yet
  UNIQUE (canvas_id, first_event)
);
CREATE INDEX entry_windows_unstarted ON entry_windows(started_at, id);
CREATE INDEX entry_windows_canvas ON entry_windows(canvas_id, last_event);

-- The users of windows not yet started (deleted once the run is started:
-- the run has them then).
CREATE TABLE entry_window_users (
  window_id INTEGER NOT NULL,
  uid       INTEGER NOT NULL,
  user_id   TEXT NOT NULL,
  event_id  INTEGER NOT NULL, -- the event that entered the user
  PRIMARY KEY (window_id, uid)
) WITHOUT ROWID;
