-- Every message the ingestion API accepted (track, page, screen, identify,
-- alias, group), deduplicated by message_id. Computed traits read track,
-- page and screen rows through events_user; identify, alias and group rows
-- have name '' so no trait ever matches them.
CREATE TABLE events (
  id           INTEGER PRIMARY KEY,          -- increasing: engines may resume from the last id they saw
  message_id   TEXT NOT NULL UNIQUE,         -- Segment messageId, or "h:" + a hash of the payload
  uid          INTEGER NOT NULL DEFAULT 0,   -- the profile; 0 while only an anonymousId is known
  user_id      TEXT NOT NULL DEFAULT '',
  anonymous_id TEXT NOT NULL DEFAULT '',
  type         TEXT NOT NULL,                -- track | page | screen | identify | alias | group
  name         TEXT NOT NULL DEFAULT '',     -- the event name; page and screen calls are "page" / "screen"
  properties   TEXT NOT NULL DEFAULT '{}',   -- properties (traits for identify, {previousId} for alias)
  ts           INTEGER NOT NULL,             -- when it happened, unix ms
  received_at  INTEGER NOT NULL,             -- when Huabu stored it, unix ms
  realtime     INTEGER NOT NULL DEFAULT 1    -- 0 when loaded by `huabu import events`
);
CREATE INDEX events_user ON events(uid, name, ts);
-- Anonymous events waiting for an identify or alias to name their user.
CREATE INDEX events_anonymous ON events(anonymous_id) WHERE uid = 0;

-- anonymousId → userId, from alias calls and from messages that carry both.
-- The first mapping of an anonymousId wins, so a shared device does not move
-- one person's history to another.
CREATE TABLE aliases (
  anonymous_id TEXT PRIMARY KEY,
  user_id      TEXT NOT NULL,
  created_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Traits sent by identify calls that had only an anonymousId; merged into
-- the profile (its own values win) when the anonymousId is aliased.
CREATE TABLE anonymous_traits (
  anonymous_id TEXT PRIMARY KEY,
  doc          TEXT NOT NULL,
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Profiles whose computed traits must be recomputed now: they have new
-- events or attributes. Written in the transaction that stores the events,
-- so a crash before the recomputation loses nothing.
CREATE TABLE trait_dirty (
  uid INTEGER PRIMARY KEY
) WITHOUT ROWID;

-- When each profile's traits next change with no new event: a windowed
-- event leaving its window, the next whole day of a days_since. Profiles
-- with nothing that can expire have no row.
CREATE TABLE trait_due (
  uid INTEGER PRIMARY KEY,
  at  INTEGER NOT NULL                       -- unix ms
);
CREATE INDEX trait_due_at ON trait_due(at);

-- Raw RFM inputs of every user who purchased within the RFM window, so
-- quintile boundaries are one scan of this table, not of the events.
CREATE TABLE rfm_values (
  uid       INTEGER PRIMARY KEY,
  last_ts   INTEGER NOT NULL,                -- the last purchase, unix ms (R)
  frequency INTEGER NOT NULL,                -- purchases within the window (F)
  monetary  REAL NOT NULL                    -- their summed amount (M)
);

-- Small named values: RFM quintile boundaries, the hash of the trait
-- definitions the stored traits were computed with.
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
