-- The provider's idempotency key of a delivery (a JPush cid, WeCom's
-- duplicate check), written before the provider is called (ADR 010): a
-- pending row that carries one, left by an attempt that died mid-call, is
-- sent again with the same key — which the provider dedupes — instead of
-- being reported unknown.
ALTER TABLE deliveries ADD COLUMN provider_key TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN key_at BIGINT NOT NULL DEFAULT 0; -- unix ms the key was recorded
