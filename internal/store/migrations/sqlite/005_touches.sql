-- Messages sent to each user, for frequency caps: written only when caps
-- are configured, so deployments without caps pay nothing.
CREATE TABLE touches (
  uid     INTEGER NOT NULL,
  at      INTEGER NOT NULL,
  channel TEXT NOT NULL,
  run_id  INTEGER NOT NULL
);
CREATE INDEX touches_uid ON touches(uid, at);
