-- 0019: session tags (issue 18: search the sessions list by tag).
--
-- A session may carry up to 16 tags, set once by createAgent. As with the tenant (0009), the
-- runtime keeps them in the session's snapshot (`context.tags`); this column is filled from there
-- by a trigger when the row is inserted and never changed afterwards, so agentry_commit stays as
-- it is. NULL means no tags. No session stored before this migration has tags (createAgent could
-- not set them), so there is nothing to backfill.
--
-- listAgents' `tag` filter is `tags @> ARRAY[tag]`, which the GIN index serves; with a sort, the
-- planner combines it with the sort's index or sorts the matching rows (keyset conditions are
-- unchanged, so paging is the same as without the filter).
ALTER TABLE sessions ADD COLUMN tags text[];
CREATE INDEX sessions_tags_idx ON sessions USING gin (tags) WHERE tags IS NOT NULL;

CREATE OR REPLACE FUNCTION agentry_session_tags() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    NEW.tags := OLD.tags; -- immutable
  ELSIF NEW.tags IS NULL AND jsonb_typeof(NEW.snapshot #> '{context,tags}') = 'array'
    AND jsonb_array_length(NEW.snapshot #> '{context,tags}') > 0 THEN
    NEW.tags := ARRAY(SELECT jsonb_array_elements_text(NEW.snapshot #> '{context,tags}'));
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER sessions_tags BEFORE INSERT OR UPDATE OF tags ON sessions
  FOR EACH ROW EXECUTE FUNCTION agentry_session_tags();
