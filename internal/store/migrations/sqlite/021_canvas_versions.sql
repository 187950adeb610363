-- Version history (console, issue 16): each deployment of a canvas version
-- with the YAML it was compiled from, who deployed it and when. A version
-- deployed again later (a rollback) is a new row; restarts that deploy the
-- same version again add nothing.
CREATE TABLE canvas_versions (
  id          INTEGER PRIMARY KEY,
  canvas_id   TEXT NOT NULL,
  plan_hash   TEXT NOT NULL,
  path        TEXT NOT NULL,
  source      TEXT NOT NULL,
  author      TEXT NOT NULL,
  deployed_at INTEGER NOT NULL
);
CREATE INDEX canvas_versions_canvas ON canvas_versions(canvas_id, id);
