-- Approving from an alert's link (policy.approvals): the key that signs the links, made once and
-- shared by every control-plane replica, and the links already used (each approves once).
CREATE TABLE signing_keys (
  name text PRIMARY KEY,
  key bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE used_approval_links (
  id text PRIMARY KEY,
  deployment text NOT NULL,
  used_at timestamptz NOT NULL DEFAULT now()
);
