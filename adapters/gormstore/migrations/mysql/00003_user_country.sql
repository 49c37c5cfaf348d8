-- The country a user was created from (ISO 3166-1 alpha-2, upper case), as
-- the geolocation decided it. NULL for users created before this
-- migration: their country was never recorded. The index serves the
-- country filter in the (column, id) shape of the other filters, so a
-- filtered page comes out in id order without a sort. Adding a nullable
-- column is an in-place change on MySQL 8 and MariaDB 10.11.

-- +goose Up
ALTER TABLE users
    ADD COLUMN country CHAR(2) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD KEY ix_users_country (country, id);

-- +goose Down
ALTER TABLE users
    DROP KEY ix_users_country,
    DROP COLUMN country;
