-- A send inserts each ledger row as pending and settles it moments later
-- (sent, failed…): with full pages every settle writes the new row version
-- on another page and a new primary-key entry. Room left in each page lets
-- the settle be a HOT update (same page, no index write); state is in no
-- index, so it qualifies. Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 60);
