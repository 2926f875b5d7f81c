-- Reference data every environment starts with.
INSERT INTO api_users (username, role) VALUES ('admin', 'admin');

INSERT INTO items (name, status, processed_at) VALUES
    ('welcome', 'processed', now()),
    ('sample-report', 'processed', now()),
    ('pending-import', 'queued', NULL);

INSERT INTO job_runs (item_id, status, duration_ms)
SELECT id, 'done', 12.5 FROM items WHERE status = 'processed';
