-- Leases (ADR 022): a named role that one process holds at a time, elected
-- through the store — the event router among several workers. A holder
-- renews its lease every few seconds; once expires_at has passed anyone may
-- take it, and each new holding gets the next term (a fencing number).
CREATE TABLE leases (
  name        TEXT PRIMARY KEY,
  holder      TEXT NOT NULL,
  term        BIGINT NOT NULL,
  expires_at  BIGINT NOT NULL, -- unix ms
  acquired_at BIGINT NOT NULL  -- unix ms, when this term began
);

-- Canvas sets (ADR 022): every canvases directory a worker deployed at
-- start, by digest (its canvases' ids and plan hashes), with when it was
-- first deployed. A worker started with a set older than the newest one
-- deploys nothing, so it never rolls canvases back or retires newer ones.
CREATE TABLE canvas_sets (
  digest      TEXT PRIMARY KEY,
  canvases    INTEGER NOT NULL,
  first_at    BIGINT NOT NULL, -- unix ms
  seq         BIGINT NOT NULL  -- order of first deploys, 1, 2, …
);
