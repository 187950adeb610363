-- The traits engine reads and computes outside the write transaction and
-- writes its results only for profiles whose dirty mark is still the one it
-- read (ADR 032): every mark carries a fresh random generation, so a mark
-- made while the engine computed (a new event, an identify call) is never
-- deleted by that computation. Existing marks get generation 0.
ALTER TABLE trait_dirty ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
