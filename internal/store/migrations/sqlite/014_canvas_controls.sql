-- Pause, resume and stop: a canvas's control state. No row: active.
CREATE TABLE canvas_controls (
  canvas_id TEXT PRIMARY KEY,
  state     TEXT NOT NULL,                 -- active | paused | stopped
  since     INTEGER NOT NULL,              -- unix ms
  actor     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Sends that found their canvas paused, since when (the planned time of
-- their remaining messages, for resume_grace); keyed by run and activity.
CREATE TABLE held_sends (
  key   TEXT PRIMARY KEY,
  since INTEGER NOT NULL
) WITHOUT ROWID;
