-- Who did what on the admin API (and what Huabu did on its own), append
-- only: the triggers refuse to change or delete a row.
CREATE TABLE audit (
  id        INTEGER PRIMARY KEY,
  at        INTEGER NOT NULL,              -- unix ms
  actor     TEXT NOT NULL,                 -- the token's name; "local" (loopback, no tokens); "system"
  role      TEXT NOT NULL DEFAULT '',
  remote    TEXT NOT NULL DEFAULT '',      -- the client's address
  action    TEXT NOT NULL,                 -- deploy | approve | run | pause | resume | stop | test_send | suppress | unsuppress | forget
  canvas_id TEXT NOT NULL DEFAULT '',
  plan_hash TEXT NOT NULL DEFAULT '',
  detail    TEXT NOT NULL DEFAULT '{}'     -- counts and parameters, JSON
);
CREATE INDEX audit_canvas ON audit(canvas_id, id);
CREATE INDEX audit_at ON audit(at);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Who first deployed each plan version (its author), and who approved it.
-- An approval is for one exact plan hash: a new version has none.
CREATE TABLE plan_authors (
  hash       TEXT PRIMARY KEY,
  canvas_id  TEXT NOT NULL,
  author     TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE approvals (
  canvas_id   TEXT NOT NULL,
  plan_hash   TEXT NOT NULL,
  approver    TEXT NOT NULL,
  approved_at INTEGER NOT NULL,
  PRIMARY KEY (canvas_id, plan_hash)
) WITHOUT ROWID;
