-- Runbook 002's migration 007: metrics views (v_%), read by /api/costs/summary.
CREATE VIEW v_run_metrics_summary AS
SELECT r.status,
       count(*)                                  AS runs,
       coalesce(round(avg(r.duration_ms), 2), 0) AS avg_duration_ms
FROM job_runs r
GROUP BY r.status;
