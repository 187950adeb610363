-- Twin of sqlite/027_profile_id_changes.sql: the counter that invalidates
-- SQLite's in-memory uid cache (ADR 047). The PostgreSQL applier keeps no
-- such cache (several workers write one database): nothing to create here.
SELECT 1;
