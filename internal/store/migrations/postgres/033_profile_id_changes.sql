-- profile_id_changes on PostgreSQL too (ADR 053): the applier remembers the
-- uids of the profile ids it has read or created (ADR 047), and this
-- counter, bumped by every statement that renames or deletes profiles
-- (forget, adopting a WeCom placeholder) on any worker, tells it when to
-- forget them. Statement-level: the applier asks only whether it moved.
CREATE TABLE profile_id_changes (n BIGINT NOT NULL);
INSERT INTO profile_id_changes (n) VALUES (0);
CREATE FUNCTION profile_ids_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE profile_id_changes SET n = n + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER profiles_id_changed AFTER UPDATE OF id ON profiles
  FOR EACH STATEMENT EXECUTE FUNCTION profile_ids_changed();
CREATE TRIGGER profiles_deleted AFTER DELETE ON profiles
  FOR EACH STATEMENT EXECUTE FUNCTION profile_ids_changed();
