-- canary-mesh schema, version 1. Applied once, in order, inside a transaction.

CREATE TABLE deployments (
  name          text PRIMARY KEY,
  -- stable: no canary · progressing: a canary is being analysed · paused: measured, not acted on
  status        text NOT NULL DEFAULT 'stable' CHECK (status IN ('stable', 'progressing', 'paused')),
  baseline_version text NOT NULL,
  default_policy jsonb NOT NULL DEFAULT '{}'::jsonb,
  retry_canary_on_baseline boolean NOT NULL DEFAULT true,
  -- bumped by every change: a request that waited for the lock while another changed the
  -- deployment sees a different revision and gets 409 instead of acting on a stale view
  revision      bigint NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE versions (
  deployment    text NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
  version       text NOT NULL,
  url           text NOT NULL,
  metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- registered: never served · canary · serving: the baseline · retired: served before, kept
  -- ready for rollback · rolled_back: failed as a canary or rolled back from as baseline
  state         text NOT NULL DEFAULT 'registered' CHECK (state IN ('registered', 'canary', 'serving', 'retired', 'rolled_back')),
  registered_at timestamptz NOT NULL DEFAULT now(),
  served_from   timestamptz,
  served_until  timestamptz,
  healthy       boolean,
  last_probe_at timestamptz,
  last_probe_error text,
  PRIMARY KEY (deployment, version)
);

CREATE TABLE canaries (
  id            bigserial PRIMARY KEY,
  deployment    text NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
  version       text NOT NULL,
  url           text NOT NULL,
  baseline_version text NOT NULL,
  policy        jsonb NOT NULL,
  weight        double precision NOT NULL,
  step_started_at timestamptz NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  ended_at      timestamptz,
  -- running · promoted · rolled_back
  outcome       text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'promoted', 'rolled_back')),
  -- decide()'s memory between ticks (e.g. since when p99 has been over the ratio)
  analysis_state jsonb NOT NULL DEFAULT '{}'::jsonb,
  last_verdict  text,
  last_analysis_at timestamptz
);
-- At most one running canary per deployment, enforced by the database itself.
CREATE UNIQUE INDEX canaries_one_running ON canaries (deployment) WHERE outcome = 'running';

CREATE TABLE analyses (
  id            bigserial PRIMARY KEY,
  canary_id     bigint NOT NULL REFERENCES canaries(id) ON DELETE CASCADE,
  deployment    text NOT NULL,
  at            timestamptz NOT NULL DEFAULT now(),
  verdict       text NOT NULL CHECK (verdict IN ('healthy', 'degraded', 'critical', 'inconclusive', 'error')),
  reasons       jsonb NOT NULL,
  baseline_stats jsonb,
  canary_stats  jsonb,
  weight        double precision NOT NULL,
  action        text NOT NULL,
  actor         text NOT NULL
);
CREATE INDEX analyses_by_deployment ON analyses (deployment, id DESC);

-- Append-only audit trail: rows are inserted, never updated or deleted.
CREATE TABLE events (
  id            bigserial PRIMARY KEY,
  deployment    text NOT NULL,
  type          text NOT NULL,
  actor         text NOT NULL,
  reason        text,
  before        jsonb,
  after         jsonb,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_by_deployment ON events (deployment, id DESC);

-- Written by proxies in batches: which version answered which request. The input body is
-- never stored, only its SHA-256.
CREATE TABLE predictions (
  request_id    text NOT NULL,
  deployment    text NOT NULL,
  version       text NOT NULL,
  role          text NOT NULL,
  input_sha256  text,
  outcome       text NOT NULL,
  latency_ms    double precision NOT NULL,
  at            timestamptz NOT NULL
);
CREATE INDEX predictions_by_request ON predictions (request_id);
CREATE INDEX predictions_by_time ON predictions (deployment, at);

-- One row per named lease; the holder renews it, anyone may take it once it expired.
CREATE TABLE leases (
  name          text PRIMARY KEY,
  holder        text NOT NULL,
  expires_at    timestamptz NOT NULL,
  acquired_at   timestamptz NOT NULL DEFAULT now()
);
