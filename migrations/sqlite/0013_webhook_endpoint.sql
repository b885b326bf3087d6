-- The webhook endpoint's state: a receiver answering 410 Gone disables it until an operator
-- re-enables it (events wait in the outbox meanwhile). Keyed by the SHA-256 of the URL, so a
-- new URL starts enabled and a URL carrying a secret is not stored.
CREATE TABLE webhook_endpoints (
    url_sha256   TEXT PRIMARY KEY,
    disabled_at  BIGINT,
    reason       TEXT,
    updated_at   BIGINT NOT NULL
);
