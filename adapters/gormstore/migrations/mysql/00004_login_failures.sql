-- Failed credential checks per email key (a SHA-256 of the normalised
-- email, so the table names no address), shared by every replica. Rows past
-- their window and lockout are purged by last_failure.

-- +goose Up
CREATE TABLE login_failures (
    email_key    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    failures     INT         NOT NULL,
    window_start DATETIME(6) NOT NULL,
    last_failure DATETIME(6) NOT NULL,
    PRIMARY KEY (email_key),
    KEY ix_login_failures_last (last_failure)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE login_failures;
