-- Twin of postgres/025_deliveries_fillfactor.sql, which leaves room in the
-- ledger's pages for settles to be HOT updates on PostgreSQL. SQLite has no
-- fill factor: nothing to change here.
SELECT 1;
