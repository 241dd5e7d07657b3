-- Per-deployment data-plane settings (timeouts, hedging, retry methods, WebSockets), as JSON
-- in the route table's shape; '{}' means the proxy's defaults.
ALTER TABLE deployments ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb;
