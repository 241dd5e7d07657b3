-- Outcomes that arrive after a prediction (a click, a conversion, a correct label, revenue),
-- joined to the prediction log by request id. One outcome per request.

CREATE TABLE feedback (
  request_id    text PRIMARY KEY,
  deployment    text NOT NULL,
  version       text NOT NULL,
  role          text NOT NULL,
  outcome       double precision NOT NULL,
  predicted_at  timestamptz NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  -- the canary that served it had already ended: stored, but no decision changes
  late          boolean NOT NULL DEFAULT false
);
CREATE INDEX feedback_by_version ON feedback (deployment, version, predicted_at);
