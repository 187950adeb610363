-- Twin of sqlite/030_profiles_partial_lookups.sql (profiles' phone and
-- WeCom lookups as partial indexes on SQLite, ADR 047). PostgreSQL keeps
-- its indexes here; the same change there is the PostgreSQL applier's to
-- measure.
SELECT 1;
