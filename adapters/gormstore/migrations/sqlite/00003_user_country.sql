-- The country a user was created from (ISO 3166-1 alpha-2, upper case), as
-- the geolocation decided it; NULL for users created before this migration
-- (see the MySQL migration).

-- +goose Up
ALTER TABLE users ADD COLUMN country TEXT NULL;
CREATE INDEX ix_users_country ON users (country, id);

-- +goose Down
DROP INDEX ix_users_country;
ALTER TABLE users DROP COLUMN country;
