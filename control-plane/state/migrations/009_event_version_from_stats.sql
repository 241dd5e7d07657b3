-- Events that record an analysis's measured stats (analysis_failed, shadow_failed) concern the
-- canary those stats are for; 008 named the baseline's version for them.
UPDATE events SET version = after -> 'canary' ->> 'version'
WHERE jsonb_typeof(after -> 'canary') = 'object'
  AND after -> 'canary' ->> 'version' IS NOT NULL
  AND version IS DISTINCT FROM after -> 'canary' ->> 'version';
