-- The console's and the WeCom callbacks' lookups of a profile by phone or
-- external userid read only profiles that have one; most profiles (every
-- user an event created) have neither. As partial indexes, a profile
-- without the value has no entry, so creating it and each rewrite of its
-- document by the traits engine skip two index writes (ADR 047). Lookups
-- of `json_extract(doc, ...) = ?` still use them: the equality implies
-- IS NOT NULL.
DROP INDEX profiles_phone;
CREATE INDEX profiles_phone ON profiles(json_extract(doc, '$.phone'))
  WHERE json_extract(doc, '$.phone') IS NOT NULL;
DROP INDEX profiles_wecom_external;
CREATE INDEX profiles_wecom_external ON profiles(json_extract(doc, '$.wecom_external_userid'))
  WHERE json_extract(doc, '$.wecom_external_userid') IS NOT NULL;
