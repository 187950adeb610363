-- PostgreSQL twin of sqlite/022_leases.sql (ADR 022): the router lease and
-- the canvas sets workers deploy at start.
CREATE TABLE leases (
  name        TEXT COLLATE "C" PRIMARY KEY,
  holder      TEXT COLLATE "C" NOT NULL,
  term        BIGINT NOT NULL,
  expires_at  BIGINT NOT NULL, -- unix ms
  acquired_at BIGINT NOT NULL  -- unix ms, when this term began
);

CREATE TABLE canvas_sets (
  digest   TEXT COLLATE "C" PRIMARY KEY,
  canvases BIGINT NOT NULL,
  first_at BIGINT NOT NULL, -- unix ms
  seq      BIGINT NOT NULL  -- order of first deploys, 1, 2, …
);
