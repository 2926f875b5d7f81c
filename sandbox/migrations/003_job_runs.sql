-- One row per job the worker ran.
CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    item_id     bigint      NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    status      text        NOT NULL,
    duration_ms numeric(10, 2),
    finished_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_job_runs_item_id ON job_runs (item_id);
