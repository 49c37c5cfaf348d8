-- Indexed substring search and the cursor signing key (issue 18).
--
-- "email contains" (LIKE '%term%') is served by a pg_trgm GIN index. The
-- extension is "trusted" since PostgreSQL 13: a role with CREATE on the
-- database may create it. Elsewhere (or when the role lacks that right) a
-- superuser runs CREATE EXTENSION pg_trgm once before the migration; this
-- statement then does nothing. The index build locks writes to users for
-- its duration (about 20 s at a million users on a small machine).
--
-- service_keys holds random keys shared by every replica of one database:
-- the key that signs list cursors when CURSOR_SECRET is not set.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX ix_users_email_ci_trgm ON users USING gin (email_ci gin_trgm_ops);

CREATE TABLE service_keys (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value BYTEA       NOT NULL
);

-- +goose Down
DROP TABLE service_keys;
DROP INDEX ix_users_email_ci_trgm;
