-- The country a user was created from (ISO 3166-1 alpha-2, upper case), as
-- the geolocation decided it; NULL for users created before this migration
-- (see the MySQL migration). Adding a nullable column without a default
-- rewrites no row.

-- +goose Up
ALTER TABLE users ADD COLUMN country VARCHAR(2) COLLATE "C" NULL;
CREATE INDEX ix_users_country ON users (country, id);

-- +goose Down
DROP INDEX ix_users_country;
ALTER TABLE users DROP COLUMN country;
