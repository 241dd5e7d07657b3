-- Alert sinks and every delivery attempt, kept with the event that caused it.

CREATE TABLE alert_sinks (
  id            bigserial PRIMARY KEY,
  -- null: a global sink, alerted for every deployment
  deployment    text REFERENCES deployments(name) ON DELETE CASCADE,
  kind          text NOT NULL CHECK (kind IN ('webhook', 'slack')),
  url           text NOT NULL,
  -- HMAC-SHA256 key for the x-canary-signature header; never returned by the API
  secret        text,
  events        text[] NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_deliveries (
  id            bigserial PRIMARY KEY,
  event_id      bigint NOT NULL REFERENCES events(id),
  sink_id       bigint NOT NULL REFERENCES alert_sinks(id) ON DELETE CASCADE,
  attempt       integer NOT NULL,
  -- delivered · retrying (failed, another attempt follows) · failed (given up)
  status        text NOT NULL CHECK (status IN ('delivered', 'retrying', 'failed')),
  http_status   integer,
  latency_ms    double precision NOT NULL,
  error         text,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_deliveries_by_event ON alert_deliveries (event_id);
