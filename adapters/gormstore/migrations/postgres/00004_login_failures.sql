-- Failed credential checks per email key (see the MySQL migration).

-- +goose Up
CREATE TABLE login_failures (
    email_key    VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
    failures     INTEGER        NOT NULL,
    window_start TIMESTAMPTZ(6) NOT NULL,
    last_failure TIMESTAMPTZ(6) NOT NULL
);
CREATE INDEX ix_login_failures_last ON login_failures (last_failure);

-- +goose Down
DROP TABLE login_failures;
