-- Reverts 006 (stagegate_rollback_database=downgrade): v1 has no item events.
DROP INDEX IF EXISTS idx_items_status_created;
DROP INDEX IF EXISTS idx_job_runs_status_finished;
DROP TABLE IF EXISTS item_events;
