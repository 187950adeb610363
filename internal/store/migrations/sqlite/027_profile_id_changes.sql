-- A profile's uid never changes, but the id that names it can: forget
-- renames it to a tombstone, adopting a WeCom placeholder renames it to the
-- user's id. The applier keeps the uids of the ids it has seen in memory
-- (ADR 047); this counter, bumped by every such change from any process
-- writing the file, tells it when to forget them.
CREATE TABLE profile_id_changes (n INTEGER NOT NULL);
INSERT INTO profile_id_changes (n) VALUES (0);
CREATE TRIGGER profiles_id_changed AFTER UPDATE OF id ON profiles
BEGIN
  UPDATE profile_id_changes SET n = n + 1;
END;
CREATE TRIGGER profiles_deleted AFTER DELETE ON profiles
BEGIN
  UPDATE profile_id_changes SET n = n + 1;
END;
