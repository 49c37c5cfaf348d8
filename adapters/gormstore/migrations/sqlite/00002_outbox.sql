-- Transactional outbox (see the MySQL migration).

-- +goose Up
CREATE TABLE outbox (
    seq          INTEGER  NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT     NOT NULL,
    event_type   TEXT     NOT NULL,
    msg_key      TEXT     NOT NULL,
    payload      BLOB     NOT NULL,
    occurred_at  DATETIME NOT NULL,
    created_at   DATETIME NOT NULL,
    published_at DATETIME NULL
);
CREATE UNIQUE INDEX ux_outbox_event_id ON outbox (event_id);
CREATE INDEX ix_outbox_published_seq ON outbox (published_at, seq);
CREATE INDEX ix_outbox_published_occurred ON outbox (published_at, occurred_at);

-- +goose Down
DROP TABLE outbox;
