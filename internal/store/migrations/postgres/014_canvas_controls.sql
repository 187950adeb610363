-- Pause, resume and stop: a canvas's control state. No row: active.
CREATE TABLE canvas_controls (
  canvas_id TEXT COLLATE "C" PRIMARY KEY,
  state     TEXT COLLATE "C" NOT NULL,                 -- active | paused | stopped
  since     BIGINT NOT NULL,              -- unix ms
  actor     TEXT COLLATE "C" NOT NULL DEFAULT ''
);

-- Sends that found their canvas paused, since when (the planned time of
-- their remaining messages, for resume_grace); keyed by run and activity.
CREATE TABLE held_sends (
  key   TEXT COLLATE "C" PRIMARY KEY,
  since BIGINT NOT NULL
);
