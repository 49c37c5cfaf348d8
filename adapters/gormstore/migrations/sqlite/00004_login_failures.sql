-- Failed credential checks per email key (see the MySQL migration).

-- +goose Up
CREATE TABLE login_failures (
    email_key    TEXT     NOT NULL PRIMARY KEY,
    failures     INTEGER  NOT NULL,
    window_start DATETIME NOT NULL,
    last_failure DATETIME NOT NULL
);
CREATE INDEX ix_login_failures_last ON login_failures (last_failure);

-- +goose Down
DROP TABLE login_failures;
