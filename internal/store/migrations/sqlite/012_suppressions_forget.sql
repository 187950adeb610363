-- Who must not get marketing, per channel or on every channel (channel ''):
-- a user id (subject user:ID), or an address — a phone number, an email, a
-- WeCom external userid — kept only as a hash (subject addr:SHA256), so the
-- list honours an opt-out without keeping the number itself. Address rows
-- outlive a PIPL deletion of the user; user rows are turned into address
-- rows by it.
CREATE TABLE suppressions (
  subject TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT '',          -- a catalogue channel (sms, wecom.customer, ...) or '' for all
  source  TEXT NOT NULL,                     -- api | aliyun_reply | tencent_reply | wecom_del_follow_user | provider_refusal | forget
  reason  TEXT NOT NULL DEFAULT '',          -- the reply text, the provider's code, the operator's note
  display TEXT NOT NULL DEFAULT '',          -- the user id, or the address masked (138****0003)
  at      INTEGER NOT NULL,                  -- unix ms
  PRIMARY KEY (subject, channel)
) WITHOUT ROWID;

-- A forgotten profile keeps its row (so its uid is never given to anyone
-- else: old cohorts and ledgers name it) with no id or data left.
ALTER TABLE profiles ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0;
