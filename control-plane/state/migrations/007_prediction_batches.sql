-- Prediction log batches already inserted, by id: a batch retried after its answer was lost
-- (the insert happened; the proxy never heard) is not inserted twice.
CREATE TABLE prediction_batches (
  id            text PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prediction_batches_by_time ON prediction_batches (at);
