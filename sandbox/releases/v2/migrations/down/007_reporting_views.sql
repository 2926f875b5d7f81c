-- Reverts 007 (stagegate_rollback_database=downgrade).
DROP VIEW IF EXISTS v_item_status_summary;
