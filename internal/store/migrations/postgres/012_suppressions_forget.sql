-- Who must not get marketing, per channel or on every channel (channel ''):
-- a user id (subject user:ID), or an address — a phone number, an email, a
-- WeCom external userid — kept only as a hash (subject addr:SHA256), so the
-- list honours an opt-out without keeping the number itself. Address rows
-- outlive a PIPL deletion of the user; user rows are turned into address
-- rows by it.
CREATE TABLE suppressions (
  subject TEXT COLLATE "C" NOT NULL,
  channel TEXT COLLATE "C" NOT NULL DEFAULT '',          -- a catalogue channel (sms, wecom.customer, ...) or '' for all
  source  TEXT COLLATE "C" NOT NULL,                     -- api | aliyun_reply | tencent_reply | wecom_del_follow_user | provider_refusal | forget
  reason  TEXT COLLATE "C" NOT NULL DEFAULT '',          -- the reply text, the provider's code, the operator's note
  display TEXT COLLATE "C" NOT NULL DEFAULT '',          -- the user id, or the address masked (138****0003)
  at      BIGINT NOT NULL,                  -- unix ms
  PRIMARY KEY (subject, channel)
);

-- A forgotten profile keeps its row (so its uid is never given to anyone
-- else: old cohorts and ledgers name it) with no id or data left.
ALTER TABLE profiles ADD COLUMN forgotten BIGINT NOT NULL DEFAULT 0;
