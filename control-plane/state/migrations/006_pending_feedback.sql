-- Outcomes that arrive before their prediction reaches the prediction log (it is written in
-- batches about once a second): kept here and joined when it catches up, or marked expired.
CREATE TABLE pending_feedback (
  request_id    text PRIMARY KEY,
  outcome       double precision NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  expired_at    timestamptz
);
CREATE INDEX pending_feedback_waiting ON pending_feedback (received_at) WHERE expired_at IS NULL;
