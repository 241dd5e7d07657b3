-- Each analysis keeps its per-rule evidence (estimates, bounds, e-values, what a decision still needs).
ALTER TABLE analyses ADD COLUMN evidence jsonb;
