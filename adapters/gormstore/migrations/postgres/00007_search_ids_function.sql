-- The ids a search of three characters or more finds (issue 18): the users
-- whose folded last name is the term, and those whose folded e-mail is LIKE
-- the pattern, which the pg_trgm GIN index serves exactly (its candidates
-- are rechecked). A function, so that this query is planned once per
-- session and the plan kept (plan_cache_mode = force_generic_plan): the
-- plan is the same for every term (the two index reads), and planning it
-- for each search (the GIN estimate reads the index) cost about as much as
-- running it. ROWS 20 tells the calling query that a search finds few, so
-- its plan is a primary-key read of these ids at every table size.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION user_search_ids(term TEXT, pattern TEXT) RETURNS SETOF BIGINT
LANGUAGE plpgsql STABLE ROWS 20
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
        SELECT id FROM users WHERE last_name_ci = term
        UNION
        SELECT id FROM users WHERE email_ci LIKE pattern ESCAPE '!';
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION user_search_ids(TEXT, TEXT);
