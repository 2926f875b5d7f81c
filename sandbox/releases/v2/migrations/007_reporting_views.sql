-- Per-status summary that /api/v1/reports/summary serves.
CREATE VIEW v_item_status_summary AS
SELECT i.status,
       count(DISTINCT i.id)                     AS item_count,
       count(r.id)                              AS runs,
       coalesce(round(avg(r.duration_ms), 2), 0) AS avg_run_ms
FROM items i
LEFT JOIN job_runs r ON r.item_id = i.id
GROUP BY i.status;
