-- Transactional outbox: one row per event, written in the transaction of
-- the user change; the relay publishes unpublished rows in seq order.

-- +goose Up
CREATE TABLE outbox (
    seq          BIGINT       NOT NULL AUTO_INCREMENT,
    event_id     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_type   VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    msg_key      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payload      MEDIUMBLOB   NOT NULL,
    occurred_at  DATETIME(6)  NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    published_at DATETIME(6)  NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY ux_outbox_event_id (event_id),
    -- pending rows (NULL first) in seq order; published rows by age for purging
    KEY ix_outbox_published_seq (published_at, seq),
    -- oldest pending occurred_at for the backlog metric
    KEY ix_outbox_published_occurred (published_at, occurred_at)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE outbox;
