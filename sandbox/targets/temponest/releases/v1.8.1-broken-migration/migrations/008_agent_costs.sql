-- A Phase 8 migration with an error: the column it indexes does not exist.
CREATE INDEX idx_job_runs_agent_cost ON job_runs (agent_cost_cents);
