-- Every delivery attempt of a webhook event: when, what came back, how long it took.
CREATE TABLE webhook_attempts (
    event_id     TEXT NOT NULL REFERENCES webhook_outbox (event_id),
    attempt      BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (event_id, attempt)
);
