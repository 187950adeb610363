-- Messages sent to each user, for frequency caps: written only when caps
-- are configured, so deployments without caps pay nothing.
CREATE TABLE touches (
  uid     BIGINT NOT NULL,
  at      BIGINT NOT NULL,
  channel TEXT COLLATE "C" NOT NULL,
  run_id  BIGINT NOT NULL
);
CREATE INDEX touches_uid ON touches(uid, at);
