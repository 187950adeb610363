-- Pause, resume and stop: a canvas's control state. No row: active.
CREATE TABLE canvas_controls (
  canvas_id TEXT PRIMARY KEY,
  state     TEXT NOT NULL,                 -- active | paused | stopped
  since     INTEGER NOT NULL,              -- unix ms
  actor     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
