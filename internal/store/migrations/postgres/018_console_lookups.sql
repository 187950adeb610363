-- The console finds a user by phone number, as support is asked "why did
-- 138... get this SMS?". The same kind of index as profiles_wecom_external.
CREATE INDEX profiles_phone ON profiles((doc ->> 'phone'));
