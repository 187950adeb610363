-- The staff SOP loop: WeCom contacts kept current by callbacks, the ledger of
-- staff tasks (one enterprise mass-send task or staff brief per staff member
-- and step), per-customer results, and callback replay protection.

-- Who is (still) a WeCom contact of whom. A row exists once a callback or a
-- directory sync has seen the pair; state says whether it can be reached.
CREATE TABLE wecom_contacts (
  staff           TEXT NOT NULL,             -- the staff member's WeCom userid
  external_userid TEXT NOT NULL,             -- the customer
  state           TEXT NOT NULL,             -- active | removed_by_staff | removed_by_customer
  add_state       TEXT NOT NULL DEFAULT '',  -- the contact way's state parameter, when added by callback
  welcome_code    TEXT NOT NULL DEFAULT '',  -- send_welcome_msg's code; usable once, within 20 s
  welcome_expires INTEGER NOT NULL DEFAULT 0,-- unix ms
  welcome_used    INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (staff, external_userid)
) WITHOUT ROWID;
CREATE INDEX wecom_contacts_external ON wecom_contacts(external_userid);

-- Customers are found by their WeCom external userid when callbacks and the
-- directory sync link them to their owner.
CREATE INDEX profiles_wecom_external ON profiles(json_extract(doc, '$.wecom_external_userid'));

-- Callback nonces seen within the replay window.
CREATE TABLE wecom_callback_nonces (
  nonce TEXT PRIMARY KEY,
  at    INTEGER NOT NULL                     -- the callback's timestamp, unix ms
) WITHOUT ROWID;

-- One row per staff member (and part: more than 10,000 customers are split
-- into several tasks) of a staff_task step execution. The row is written
-- before WeCom is called, which is what keeps a retry from creating a second
-- task: a row left 'pending' by a crash is looked up, never blindly redone.
CREATE TABLE staff_tasks (
  run_id      INTEGER NOT NULL,
  step_id     TEXT NOT NULL,
  staff       TEXT NOT NULL,                 -- WeCom userid
  part        INTEGER NOT NULL DEFAULT 0,
  canvas_id   TEXT NOT NULL,
  kind        TEXT NOT NULL,                 -- customers | staff
  state       TEXT NOT NULL,                 -- new | pending | created | recorded | failed | unknown
  ref         TEXT NOT NULL DEFAULT '',      -- the mass-send msgid, or the template card's task_id
  attempt     TEXT NOT NULL DEFAULT '',      -- the attempt that marked it pending
  pending_at  INTEGER NOT NULL DEFAULT 0,    -- unix ms, for the lookup window
  customers   INTEGER NOT NULL DEFAULT 0,    -- customers in the task (after fail_list)
  name        TEXT NOT NULL DEFAULT '',      -- snapshots of the directory at creation,
  grid        TEXT NOT NULL DEFAULT '',      -- so reports do not move when staff do
  leader      TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL DEFAULT 0,
  deadline    INTEGER NOT NULL DEFAULT 0,
  notified_at INTEGER NOT NULL DEFAULT 0,
  reminders   TEXT NOT NULL DEFAULT '[]',    -- unix ms of each reminder sent
  escalated_at INTEGER NOT NULL DEFAULT 0,
  done_at     INTEGER NOT NULL DEFAULT 0,    -- the staff member sent (or acknowledged)
  result      TEXT NOT NULL DEFAULT '',      -- on_time | late | not_done | failed | unknown, once final
  reason      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, step_id, staff, part)
) WITHOUT ROWID;
CREATE INDEX staff_tasks_canvas ON staff_tasks(canvas_id, run_id);
CREATE INDEX staff_tasks_ref ON staff_tasks(ref) WHERE ref != '';

-- Each customer of a staff_task step: which task (staff, part) and what
-- WeCom reported for them.
CREATE TABLE staff_task_customers (
  run_id          INTEGER NOT NULL,
  step_id         TEXT NOT NULL,
  uid             INTEGER NOT NULL,
  staff           TEXT NOT NULL DEFAULT '',
  part            INTEGER NOT NULL DEFAULT 0,
  external_userid TEXT NOT NULL DEFAULT '',
  status          TEXT NOT NULL,             -- assigned | sent | not_friend | over_quota | unsent | failed | unknown | no_owner | no_address
  send_time       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, step_id, uid)
) WITHOUT ROWID;
CREATE INDEX staff_task_customers_task ON staff_task_customers(run_id, step_id, staff, part, external_userid);
