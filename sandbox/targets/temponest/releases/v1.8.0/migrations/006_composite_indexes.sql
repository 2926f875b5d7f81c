-- Runbook 002's migration 006: composite indexes (idx_%).
CREATE INDEX idx_job_runs_status_finished ON job_runs (status, finished_at);
CREATE INDEX idx_items_status_id ON items (status, id);
