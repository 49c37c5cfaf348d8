-- Users. The *_ci columns hold the lower-cased (in Go) name and email:
-- filters, search, ordering and email uniqueness use them with SQLite's
-- BINARY collation, byte-exact like the VARBINARY columns on MySQL.
-- AUTOINCREMENT: ids are never reused, as on MySQL (events and since_id
-- rely on it). Timestamps are UTC text in one format, so text order is time
-- order.

-- +goose Up
CREATE TABLE users (
    id            INTEGER  NOT NULL PRIMARY KEY AUTOINCREMENT,
    email         TEXT     NOT NULL,
    email_ci      TEXT     NOT NULL,
    first_name    TEXT     NOT NULL,
    first_name_ci TEXT     NOT NULL,
    last_name     TEXT     NOT NULL,
    last_name_ci  TEXT     NOT NULL,
    address       TEXT     NOT NULL,
    password_hash TEXT     NOT NULL,
    version       INTEGER  NOT NULL,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX ux_users_email_ci ON users (email_ci);
CREATE INDEX ix_users_first_name_ci ON users (first_name_ci, id);
CREATE INDEX ix_users_first_name_ci_desc ON users (first_name_ci DESC, id);
CREATE INDEX ix_users_last_name_ci ON users (last_name_ci, id);
CREATE INDEX ix_users_last_name_ci_desc ON users (last_name_ci DESC, id);
CREATE INDEX ix_users_created_at ON users (created_at, id);
CREATE INDEX ix_users_created_at_desc ON users (created_at DESC, id);

-- Exact user count without scanning (see the MySQL migration).
CREATE TABLE user_counts (
    slot INTEGER NOT NULL PRIMARY KEY,
    n    INTEGER NOT NULL
);
INSERT INTO user_counts (slot, n) SELECT 0, COUNT(*) FROM users;
INSERT INTO user_counts (slot, n) VALUES
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0),
    (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0);

-- +goose Down
DROP TABLE user_counts;
DROP TABLE users;
