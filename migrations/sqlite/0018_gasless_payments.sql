-- Gasless payments: one row per payer's signed authorization (EIP-3009: its nonce is unique per
-- payer and token), written with the relayer's signed transaction before it is broadcast, so a
-- retry, a second process or a restart sends that transaction again, never a second one.
CREATE TABLE gasless_payments (
    payment_id     TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (order_id),
    chain_id       BIGINT NOT NULL,
    token_address  TEXT NOT NULL,
    payer          TEXT NOT NULL,
    auth_nonce     TEXT NOT NULL,
    amount_base    TEXT NOT NULL,
    relayer        TEXT NOT NULL,
    relayer_nonce  BIGINT NOT NULL,
    raw_tx         TEXT NOT NULL,
    tx_hash        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('sent', 'confirmed', 'failed')),
    error          TEXT,
    gas_used       BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX gasless_one_per_authorization ON gasless_payments (chain_id, token_address, payer, auth_nonce);
CREATE UNIQUE INDEX gasless_one_per_relayer_nonce ON gasless_payments (chain_id, relayer, relayer_nonce);
CREATE INDEX gasless_payments_order ON gasless_payments (order_id);
CREATE INDEX gasless_payments_status ON gasless_payments (status);
