-- A refund that reached its payer at depth reads `refunded`, as its fund does (it read
-- `confirmed`, a word the books use for money coming in). SQLite changes a CHECK only by
-- building the table again.
CREATE TABLE refunds_renamed (
    refund_id      TEXT PRIMARY KEY,
    fund_id        TEXT NOT NULL REFERENCES stray_funds (fund_id),
    team_id        TEXT NOT NULL REFERENCES teams (team_id),
    chain_id       BIGINT NOT NULL,
    token_address  TEXT NOT NULL,
    amount_base    TEXT NOT NULL,
    usd            TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'sent', 'refunded', 'failed')),
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
INSERT INTO refunds_renamed (refund_id, fund_id, team_id, chain_id, token_address, amount_base, usd, status, to_address, from_address, nonce, raw_tx, tx_hash, block_number, block_hash, error, created_at, claimed_at, approved_at, sent_at, confirmed_at, updated_at)
    SELECT refund_id, fund_id, team_id, chain_id, token_address, amount_base, usd, CASE status WHEN 'confirmed' THEN 'refunded' ELSE status END, to_address, from_address, nonce, raw_tx, tx_hash, block_number, block_hash, error, created_at, claimed_at, approved_at, sent_at, confirmed_at, updated_at
    FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_renamed RENAME TO refunds;
CREATE UNIQUE INDEX refunds_one_live_per_fund ON refunds (fund_id) WHERE status <> 'failed';
CREATE UNIQUE INDEX refunds_one_per_nonce ON refunds (chain_id, from_address, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX refunds_status ON refunds (status);
