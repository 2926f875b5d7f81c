-- Items the API serves and the worker processes.
CREATE TABLE items (
    id         bigserial PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
