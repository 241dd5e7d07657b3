-- The version each event concerns (the canary's, or the baseline's for deployment events), so
-- history can name it and be filtered by it. Earlier events get it from what they recorded.
ALTER TABLE events ADD COLUMN version text;
UPDATE events SET version = COALESCE(
  CASE WHEN jsonb_typeof(after -> 'canary') = 'string' THEN after ->> 'canary' END,
  CASE WHEN jsonb_typeof(before -> 'canary') = 'string' THEN before ->> 'canary' END,
  after ->> 'version',
  after -> 'baseline' ->> 'version'
);
CREATE INDEX events_by_version ON events (deployment, version, id DESC);
