-- PostgreSQL twin of sqlite/024_staff_cohorts.sql: the step execution's
-- cohort is part of a staff task's key (rows written before are cohort 0).
ALTER TABLE staff_tasks ADD COLUMN cohort BIGINT NOT NULL DEFAULT 0;
ALTER TABLE staff_tasks DROP CONSTRAINT staff_tasks_pkey;
ALTER TABLE staff_tasks ADD PRIMARY KEY (run_id, step_id, cohort, staff, part);

ALTER TABLE staff_task_customers ADD COLUMN cohort BIGINT NOT NULL DEFAULT 0;
DROP INDEX staff_task_customers_task;
CREATE INDEX staff_task_customers_task ON staff_task_customers(run_id, step_id, cohort, staff, part, external_userid);
