-- PostgreSQL twin of sqlite/025_drop_lock_rows.sql.
-- touch_locks and pacing_keys (023) were meant as per-user and per-key row
-- locks, but the transactions that wrote them already hold the store's
-- write lock (SQLite's writer, PostgreSQL's advisory lock), so they
-- serialised nothing more and grew by a row per capped user (ADR 023).
DROP TABLE touch_locks;
DROP TABLE pacing_keys;
