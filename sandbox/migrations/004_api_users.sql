-- Users known to the API (the sandbox admin logs in from its environment; this is the catalog).
CREATE TABLE api_users (
    id         bigserial PRIMARY KEY,
    username   text        NOT NULL UNIQUE,
    role       text        NOT NULL DEFAULT 'viewer',
    created_at timestamptz NOT NULL DEFAULT now()
);
