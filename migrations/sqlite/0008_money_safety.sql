-- Mirrors the PostgreSQL 0008. Money safety: card charges written before the processor is called, the sandbox processor's
-- own ledger, idempotency leases, received amounts on deposits, the sweep ledger and the
-- unattributed-funds ledger.

-- A card payment's intent, committed before the processor is asked to charge. `charge_ref` is
-- the processor's idempotency reference and the order id the payment is recorded under.
-- `state`: pending (asked, answer not recorded), recorded, refunded, failed. `purpose` is what
-- to record once charged (JSON). `request_key` ties it to the Idempotency-Key that started it
-- (cleared when it fails, so the key may try again); `fingerprint` finds the same request sent
-- without a key. `product_id`/`qty`: stock the intent holds for a cart order.
CREATE TABLE card_charges (
    charge_ref           TEXT PRIMARY KEY,
    team_id              TEXT NOT NULL REFERENCES teams (team_id),
    card_id              TEXT NOT NULL,
    usd                  TEXT NOT NULL,
    purpose              TEXT NOT NULL,
    request_key          TEXT UNIQUE,
    fingerprint          TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'recorded', 'refunded', 'failed')),
    processor_charge_id  TEXT,
    app_id               TEXT,
    error                TEXT,
    product_id           BIGINT,
    qty                  BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX card_charges_pending ON card_charges (created_at) WHERE state = 'pending';
CREATE INDEX card_charges_fingerprint ON card_charges (fingerprint, created_at);

-- The built-in sandbox processor keeps its charges here, so a lookup by reference survives
-- restarts like a real processor's would.
CREATE TABLE sandbox_charges (
    reference    TEXT PRIMARY KEY,
    charge_id    TEXT NOT NULL UNIQUE,
    card_id      TEXT NOT NULL,
    usd          TEXT NOT NULL,
    refunded_at  BIGINT,
    created_at   BIGINT NOT NULL
);

-- An in-flight claim holds its key until `lease_until` (unix seconds); after that a retry may
-- take it over. `done` is what the work created (JSON), written in the work's own transaction.
ALTER TABLE idempotency_keys ADD COLUMN lease_until BIGINT;
ALTER TABLE idempotency_keys ADD COLUMN done TEXT;

-- `amount` is what was received; `expected_amount` what the order asked.
ALTER TABLE deposits ADD COLUMN expected_amount TEXT;

-- One row per deposit address and token a sweep transaction moved (or tried to).
-- `state`: pending (sent or mined, not yet deep), confirmed, failed (that address's transfer
-- reverted inside the batch, or the whole transaction did), dropped (left the chain).
CREATE TABLE sweeps (
    sweep_id         TEXT PRIMARY KEY,
    chain_id         BIGINT NOT NULL,
    tx_hash          TEXT NOT NULL,
    token_address    TEXT NOT NULL,
    deposit_address  TEXT NOT NULL,
    expected_base    TEXT NOT NULL,
    moved_base       TEXT NOT NULL DEFAULT '0',
    state            TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'failed', 'dropped')),
    block_number     BIGINT,
    block_hash       TEXT,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX sweeps_address ON sweeps (deposit_address, token_address);
CREATE INDEX sweeps_open ON sweeps (state) WHERE state = 'pending';

-- Money at a deposit address that credits no order: a wrong token, an overpayment, a partial
-- payment on an order that can no longer be paid, a payment after the late window. One
-- unattributed row per (order, token) grows with it; the operator applies it to another order
-- (`applied_order_id`, counted in that order's sums) or records a refund (`refund_tx`).
CREATE TABLE stray_funds (
    fund_id           TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL REFERENCES orders (order_id),
    team_id           TEXT NOT NULL REFERENCES teams (team_id),
    chain_id          BIGINT NOT NULL,
    token_address     TEXT NOT NULL,
    deposit_address   TEXT NOT NULL,
    reason            TEXT NOT NULL,
    amount_base       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('unattributed', 'applied', 'refunded')),
    applied_order_id  TEXT REFERENCES orders (order_id),
    refund_tx         TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX stray_funds_open ON stray_funds (order_id, token_address) WHERE status = 'unattributed';
CREATE INDEX stray_funds_applied ON stray_funds (applied_order_id);
CREATE INDEX stray_funds_team ON stray_funds (team_id, status);

-- Each reconciliation run: at one block, every deposit address's token balance against the
-- ledger; `differences` is the JSON list of those that disagree.
CREATE TABLE reconciliations (
    run_id        TEXT PRIMARY KEY,
    block_number  BIGINT NOT NULL,
    checked       BIGINT NOT NULL,
    differences   TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX reconciliations_time ON reconciliations (created_at);

-- A job that must not run twice at once across processes (the sweep: the daemon's job and
-- `paywatch sweep`) holds its row until `lease_until`.
CREATE TABLE job_leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);

-- Attempts made before the event's last redelivery: a redelivered event has its own
-- `max_attempts` again (the attempt numbers keep counting).
ALTER TABLE webhook_outbox ADD COLUMN attempts_before_redelivery BIGINT NOT NULL DEFAULT 0;

-- The newest head the watching process saw, so processes on standby show the same
-- confirmations (they keep no RPC view of their own).
ALTER TABLE chain_cursor ADD COLUMN head_block BIGINT;

-- Written and never read: the order's sums are recomputed from its transfers every time.
ALTER TABLE chain_transfers DROP COLUMN credited;

-- Pictures come back in the order they were saved (as the seed shows them), not by name.
ALTER TABLE goods_specification_pics ADD COLUMN position BIGINT NOT NULL DEFAULT 0;

-- At most one pending card payment per fingerprint: two identical calls at the same instant
-- cannot both charge (a keyed call's fingerprint includes its key).
CREATE UNIQUE INDEX card_charges_one_pending ON card_charges (fingerprint) WHERE state = 'pending';
