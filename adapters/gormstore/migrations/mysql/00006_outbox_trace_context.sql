-- The W3C trace context of the request that wrote each outbox row, so the
-- relay's publish joins that request's trace and the message carries it
-- (headers traceparent/tracestate). NULL: the request was not traced.
-- Nullable without a default: adding them does not rewrite the table.

-- +goose Up
ALTER TABLE outbox
    ADD COLUMN traceparent VARCHAR(55)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN tracestate  VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NULL;

-- +goose Down
ALTER TABLE outbox DROP COLUMN tracestate, DROP COLUMN traceparent;
