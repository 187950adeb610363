-- Frequency caps checked and recorded at once (ADR 023). A send reserves a
-- touch for each user its caps let through, in the same transaction as the
-- check, keyed by its ledger key so a retried send finds its own; the
-- touches of users it did not send to are dropped after it settles.
-- touch_locks serialises checks of the same user across workers (a
-- PostgreSQL row lock; SQLite's writer lock does it anyway).
ALTER TABLE touches ADD COLUMN step_id TEXT NOT NULL DEFAULT '';
ALTER TABLE touches ADD COLUMN visit INTEGER NOT NULL DEFAULT 0;
CREATE INDEX touches_send ON touches(run_id, step_id, visit, uid);
CREATE TABLE touch_locks (
  uid BIGINT PRIMARY KEY,
  n   BIGINT NOT NULL DEFAULT 0
);

-- Send slots per rate-limited recipient (WeCom app messages: ≤30 a minute and
-- ≤1000 an hour per member), booked in the store so every worker's sends
-- count (ADR 023). pacing_keys serialises bookings of one key.
CREATE TABLE pacing_slots (
  id  INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  at  BIGINT NOT NULL -- unix ms
);
CREATE INDEX pacing_slots_key ON pacing_slots(key, at);
CREATE TABLE pacing_keys (
  key TEXT PRIMARY KEY,
  n   BIGINT NOT NULL DEFAULT 0
);
