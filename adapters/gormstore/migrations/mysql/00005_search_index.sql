-- Indexed substring search and the cursor signing key (issue 18).
--
-- MariaDB has no n-gram full-text parser, so "email contains" is served by
-- a trigram table: every distinct 3-byte substring of email_ci with the
-- user's id, written by the store in the transaction that writes the user
-- (insert, update, delete). A term of 3 bytes or more is looked up as the
-- users holding all of its trigrams, then checked with LIKE. Byte (not
-- character) trigrams are what SUBSTRING of a VARBINARY gives here and
-- what the store computes, so both always agree; any substring's bytes
-- contain its trigrams whatever the encoding.
--
-- service_keys holds random keys shared by every replica of one database:
-- the key that signs list cursors when CURSOR_SECRET is not set.

-- +goose Up
CREATE TABLE user_email_trigrams (
    trigram VARBINARY(3) NOT NULL,
    user_id BIGINT       NOT NULL,
    PRIMARY KEY (trigram, user_id),
    KEY ix_user_email_trigrams_user (user_id)
) ENGINE=InnoDB;

-- Existing rows: positions 1..2000 (an email_ci has at most 1016 bytes),
-- only up to the longest e-mail present: the server pairs every user with
-- every position before the ON condition drops a pair, and e-mails are
-- rarely longer than 40 bytes (2000 positions made 10,000 users take
-- 4 s instead of 1 s, most of it in pairs dropped).
INSERT IGNORE INTO user_email_trigrams (trigram, user_id)
SELECT SUBSTRING(u.email_ci, p.n, 3), u.id
FROM users u
JOIN (
    SELECT n FROM (
    SELECT a.d * 1000 + b.d * 100 + c.d * 10 + e.d + 1 AS n
    FROM (SELECT 0 AS d UNION ALL SELECT 1) a,
         (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
          UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) b,
         (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
          UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) c,
         (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
          UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) e
    ) positions
    WHERE n <= (SELECT MAX(LENGTH(email_ci)) - 2 FROM users)
) p ON p.n <= LENGTH(u.email_ci) - 2;

CREATE TABLE service_keys (
    name  VARCHAR(64)   NOT NULL,
    value VARBINARY(64) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE service_keys;
DROP TABLE user_email_trigrams;
