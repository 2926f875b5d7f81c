-- Runbook 003's "cohesion" table (alembic upgrade head creates it in LSOS).
CREATE TABLE report_schedules (
    id          bigserial PRIMARY KEY,
    campaign_id text NOT NULL,
    cron        text NOT NULL,
    report      text NOT NULL
);
INSERT INTO report_schedules (campaign_id, cron, report) VALUES ('c-1', '0 6 * * 1', 'weekly');
