-- Processing state written by the worker.
ALTER TABLE items
    ADD COLUMN status       text        NOT NULL DEFAULT 'queued',
    ADD COLUMN processed_at timestamptz;

ALTER TABLE items
    ADD CONSTRAINT items_status_check CHECK (status IN ('queued', 'processed', 'failed'));
