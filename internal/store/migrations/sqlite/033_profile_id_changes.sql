-- Twin of postgres/033_profile_id_changes.sql, which gives PostgreSQL the
-- counter SQLite has had since 027 (ADR 047, ADR 053): nothing to do here.
SELECT 1;
