-- A held send that resumed too late (past resume_grace) stays expired: its
-- row is kept with the verdict, so a retry of the same send after a failed
-- attempt does not send what the attempt had decided not to send.
ALTER TABLE held_sends ADD COLUMN expired BIGINT NOT NULL DEFAULT 0;
ALTER TABLE held_sends ADD COLUMN decided_at BIGINT NOT NULL DEFAULT 0; -- unix ms
