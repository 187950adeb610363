-- /metrics reads, at every scrape, which runs are going on and the cohorts
-- of those runs asleep now: keep both from scanning their tables.
CREATE INDEX runs_state ON runs(state, canvas_id);
CREATE INDEX cohorts_run_sleeping ON cohorts(run_id, wake_at) WHERE wake_at > 0;
CREATE INDEX runs_finished ON runs(finished_at, id) WHERE finished_at IS NOT NULL;
