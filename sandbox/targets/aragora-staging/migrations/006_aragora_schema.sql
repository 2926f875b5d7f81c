-- Runbook 000's data validation: schema_migrations, the four critical tables and indexes.
CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz DEFAULT now());
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE debates (id bigserial PRIMARY KEY, topic text NOT NULL, user_id bigint REFERENCES users (id));
CREATE TABLE audit_events (id bigserial PRIMARY KEY, event text NOT NULL, hash text, at timestamptz DEFAULT now());
CREATE TABLE usage_events (id bigserial PRIMARY KEY, user_id bigint REFERENCES users (id), tokens integer NOT NULL);
CREATE INDEX idx_debates_user_id ON debates (user_id);
CREATE INDEX idx_audit_events_at ON audit_events (at);
INSERT INTO audit_events (event, hash) VALUES ('staging.seeded', 'a3f1c2');
INSERT INTO schema_migrations (version) VALUES ('20260114_006');
