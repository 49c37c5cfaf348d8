-- The W3C trace context of the request that wrote each outbox row, so the
-- relay's publish joins that request's trace and the message carries it
-- (headers traceparent/tracestate). NULL: the request was not traced.

-- +goose Up
ALTER TABLE outbox ADD COLUMN traceparent VARCHAR(55) NULL, ADD COLUMN tracestate VARCHAR(512) NULL;

-- +goose Down
ALTER TABLE outbox DROP COLUMN tracestate, DROP COLUMN traceparent;
