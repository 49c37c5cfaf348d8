-- Indexed substring search and the cursor signing key (issue 18).
--
-- "email contains" is served by an FTS5 table with the trigram tokenizer
-- over email_ci (external content: the text stays in users only), kept in
-- step by triggers. case_sensitive 1: email_ci is already folded, and GLOB
-- (which the store uses; LIKE is only indexed case-insensitively) is
-- indexed in this mode. detail=none keeps the index small: GLOB needs no
-- token positions.
--
-- service_keys holds random keys shared by every process on one database:
-- the key that signs list cursors when CURSOR_SECRET is not set.

-- +goose Up
CREATE VIRTUAL TABLE users_email_trgm USING fts5(
    email_ci, content='users', content_rowid='id',
    tokenize='trigram case_sensitive 1', detail=none
);
INSERT INTO users_email_trgm (users_email_trgm) VALUES ('rebuild');

-- +goose StatementBegin
CREATE TRIGGER users_email_trgm_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_email_trgm (rowid, email_ci) VALUES (new.id, new.email_ci);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER users_email_trgm_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_email_trgm (users_email_trgm, rowid, email_ci) VALUES ('delete', old.id, old.email_ci);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER users_email_trgm_update AFTER UPDATE OF email_ci ON users BEGIN
    INSERT INTO users_email_trgm (users_email_trgm, rowid, email_ci) VALUES ('delete', old.id, old.email_ci);
    INSERT INTO users_email_trgm (rowid, email_ci) VALUES (new.id, new.email_ci);
END;
-- +goose StatementEnd

CREATE TABLE service_keys (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

-- +goose Down
DROP TABLE service_keys;
DROP TRIGGER users_email_trgm_update;
DROP TRIGGER users_email_trgm_delete;
DROP TRIGGER users_email_trgm_insert;
DROP TABLE users_email_trgm;
