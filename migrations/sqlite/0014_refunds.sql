-- Refunds of stray funds. The id is the claim link's capability. A refund is an intent first:
-- its nonce, signed transaction and hash are written before the transaction is broadcast, so a
-- process killed in between broadcasts the same transaction again, never a second one.
CREATE TABLE refunds (
    refund_id      TEXT PRIMARY KEY,
    fund_id        TEXT NOT NULL REFERENCES stray_funds (fund_id),
    team_id        TEXT NOT NULL REFERENCES teams (team_id),
    chain_id       BIGINT NOT NULL,
    token_address  TEXT NOT NULL,
    amount_base    TEXT NOT NULL,
    usd            TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'sent', 'confirmed', 'failed')),
    to_address     TEXT,
    from_address   TEXT,
    nonce          BIGINT,
    raw_tx         TEXT,
    tx_hash        TEXT,
    block_number   BIGINT,
    block_hash     TEXT,
    error          TEXT,
    created_at     BIGINT NOT NULL,
    claimed_at     BIGINT,
    approved_at    BIGINT,
    sent_at        BIGINT,
    confirmed_at   BIGINT,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX refunds_one_live_per_fund ON refunds (fund_id) WHERE status <> 'failed';
CREATE UNIQUE INDEX refunds_one_per_nonce ON refunds (chain_id, from_address, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX refunds_status ON refunds (status);
