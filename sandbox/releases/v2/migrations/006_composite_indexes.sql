-- Item events for the reporting views, with the composite indexes the reports query by.
CREATE TABLE item_events (
    id         bigserial PRIMARY KEY,
    item_id    bigint      NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_item_events_item_created ON item_events (item_id, created_at DESC);
CREATE INDEX idx_job_runs_status_finished ON job_runs (status, finished_at DESC);
CREATE INDEX idx_items_status_created ON items (status, created_at DESC);
