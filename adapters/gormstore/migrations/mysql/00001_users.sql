-- Users. The *_ci columns hold the lower-cased (in Go) name and email:
-- filters, search, ordering and email uniqueness use them, as VARBINARY, so
-- comparisons are byte-exact exactly like SQLite's BINARY collation (no
-- collation or PAD SPACE differences between MySQL 8, MariaDB and SQLite).
-- Each ordering has an index ending in id, the final tie-breaker (id ASC);
-- the DESC variants serve "-field" orderings without a sort.

-- +goose Up
CREATE TABLE users (
    id            BIGINT        NOT NULL AUTO_INCREMENT,
    email         VARCHAR(254)  NOT NULL,
    email_ci      VARBINARY(1016) NOT NULL,
    first_name    VARCHAR(70)   NOT NULL,
    first_name_ci VARBINARY(280) NOT NULL,
    last_name     VARCHAR(70)   NOT NULL,
    last_name_ci  VARBINARY(280) NOT NULL,
    address       VARCHAR(300)  NOT NULL,
    password_hash VARCHAR(255)  NOT NULL,
    version       BIGINT        NOT NULL,
    created_at    DATETIME(6)   NOT NULL,
    updated_at    DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY ux_users_email_ci (email_ci),
    KEY ix_users_first_name_ci (first_name_ci, id),
    KEY ix_users_first_name_ci_desc (first_name_ci DESC, id),
    KEY ix_users_last_name_ci (last_name_ci, id),
    KEY ix_users_last_name_ci_desc (last_name_ci DESC, id),
    KEY ix_users_created_at (created_at, id),
    KEY ix_users_created_at_desc (created_at DESC, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Exact user count without scanning: the sum of n over the slots, kept in
-- the transactions that insert and delete users. Several slots (one picked
-- at random per write) keep concurrent writers off a single hot row.
CREATE TABLE user_counts (
    slot SMALLINT NOT NULL,
    n    BIGINT   NOT NULL,
    PRIMARY KEY (slot)
) ENGINE=InnoDB;

INSERT INTO user_counts (slot, n) SELECT 0, COUNT(*) FROM users;
INSERT INTO user_counts (slot, n) VALUES
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0),
    (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0);

-- +goose Down
DROP TABLE user_counts;
DROP TABLE users;
