-- paywatch schema. Conventions: `<table>_id` keys (UUID text), unix-second BIGINT times,
-- money as exact decimal TEXT (USD and token amounts, e.g. '33.3') and token base units as
-- integer TEXT (uint256 does not fit any SQL integer); never floats. The SQLite set mirrors
-- this file column for column.

-- A customer of the platform. API keys are separate so they can be rotated and revoked.
CREATE TABLE teams (
    team_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Only the SHA-256 of a key is kept; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams (team_id),
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_team ON api_keys (team_id);

-- A prepaid deployment of a chart. `status`: pending_payment, active, expired, cancelled.
CREATE TABLE apps (
    app_id          TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL REFERENCES teams (team_id),
    name            TEXT NOT NULL,
    cluster_id      TEXT NOT NULL,
    namespace_name  TEXT NOT NULL DEFAULT '',
    chart_name      TEXT NOT NULL,
    chart_repo      TEXT NOT NULL DEFAULT '',
    chart_ver       TEXT NOT NULL DEFAULT '',
    chart_desc      TEXT NOT NULL DEFAULT '',
    chart_icon_url  TEXT NOT NULL DEFAULT '',
    app_version     TEXT NOT NULL DEFAULT '',
    instance_type   TEXT NOT NULL DEFAULT '',
    enterprise      BIGINT NOT NULL DEFAULT 0,
    custom_values   TEXT NOT NULL DEFAULT '[]',
    cpu_limit       BIGINT NOT NULL,
    mem_limit       BIGINT NOT NULL,
    storage_limit   BIGINT NOT NULL,
    pay_method      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending_payment', 'active', 'expired', 'cancelled')),
    start_time      BIGINT,
    end_time        BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX apps_team ON apps (team_id);

-- What someone owes: an app's first period (`create`), an extension (`extend`) or a catalog
-- purchase (`catalog`). The quote is locked in: usd, token amount, the price used. A crypto
-- order has its own deposit address (CREATE2 of `salt` under the factory). Received amounts
-- are base units, split into seen (included) and confirmed (deep enough).
CREATE TABLE orders (
    order_id         TEXT PRIMARY KEY,
    team_id          TEXT NOT NULL REFERENCES teams (team_id),
    app_id           TEXT REFERENCES apps (app_id),
    kind             TEXT NOT NULL CHECK (kind IN ('create', 'extend', 'catalog')),
    pay_method       TEXT NOT NULL,
    period_months    BIGINT NOT NULL,
    usd              TEXT NOT NULL,
    amount           TEXT NOT NULL,
    amount_base      TEXT,
    token_price_usd  TEXT,
    token_address    TEXT,
    chain_id         BIGINT,
    salt             TEXT UNIQUE,
    deposit_address  TEXT UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'partially_paid', 'paid', 'expired')),
    seen_base        TEXT NOT NULL DEFAULT '0',
    confirmed_base   TEXT NOT NULL DEFAULT '0',
    overpaid_base    TEXT NOT NULL DEFAULT '0',
    late             BIGINT NOT NULL DEFAULT 0,
    card_id          TEXT,
    paid_at          BIGINT,
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX orders_team ON orders (team_id);
CREATE INDEX orders_app ON orders (app_id);
CREATE INDEX orders_open ON orders (status, expires_at);

-- Every ERC20 Transfer into a deposit address, once: (chain_id, tx_hash, log_index) is the
-- identity, so replaying a block range changes nothing. `state`: seen or confirmed.
-- `credited` marks a transfer already counted into its order's confirmed sum.
CREATE TABLE chain_transfers (
    chain_id       BIGINT NOT NULL,
    tx_hash        TEXT NOT NULL,
    log_index      BIGINT NOT NULL,
    block_number   BIGINT NOT NULL,
    block_hash     TEXT NOT NULL,
    token_address  TEXT NOT NULL,
    from_address   TEXT NOT NULL,
    to_address     TEXT NOT NULL,
    amount_base    TEXT NOT NULL,
    order_id       TEXT REFERENCES orders (order_id),
    state          TEXT NOT NULL CHECK (state IN ('seen', 'confirmed')),
    credited       BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
CREATE INDEX chain_transfers_order ON chain_transfers (order_id);
CREATE INDEX chain_transfers_block ON chain_transfers (chain_id, block_number);

-- One row per credited payment (a card charge, or a crypto order once paid): the deposit list.
-- `swept_tx` is set when a sweep moved a crypto deposit to the treasury.
CREATE TABLE deposits (
    deposit_id        TEXT PRIMARY KEY,
    team_id           TEXT NOT NULL REFERENCES teams (team_id),
    app_id            TEXT REFERENCES apps (app_id),
    order_id          TEXT NOT NULL UNIQUE REFERENCES orders (order_id),
    pay_method        TEXT NOT NULL,
    usd               TEXT NOT NULL,
    amount            TEXT NOT NULL,
    address           TEXT,
    transaction_hash  TEXT,
    card_id           TEXT,
    app_end_time      BIGINT,
    deposit_time      BIGINT NOT NULL,
    swept_tx          TEXT,
    swept_at          BIGINT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX deposits_team_time ON deposits (team_id, deposit_time);

-- Where the watcher stands, per chain: the last processed block and its hash.
CREATE TABLE chain_cursor (
    chain_id      BIGINT PRIMARY KEY,
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Recent processed block hashes, to find the common ancestor after a reorg.
CREATE TABLE chain_blocks (
    chain_id      BIGINT NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    parent_hash   TEXT NOT NULL,
    PRIMARY KEY (chain_id, block_number)
);

-- Goods specifications (seed 000): two spec names, a matrix of cells and pictures per main spec.
CREATE TABLE goods_specifications (
    goods_id                   BIGINT PRIMARY KEY,
    main_specification_name    TEXT NOT NULL,
    second_specification_name  TEXT NOT NULL,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);

CREATE TABLE goods_specification_cells (
    goods_id              BIGINT NOT NULL REFERENCES goods_specifications (goods_id) ON DELETE CASCADE,
    position              BIGINT NOT NULL,
    main_specification    TEXT NOT NULL,
    second_specification  TEXT NOT NULL,
    purchasing_cost       TEXT NOT NULL,
    PRIMARY KEY (goods_id, main_specification, second_specification)
);

CREATE TABLE goods_specification_pics (
    goods_id            BIGINT NOT NULL REFERENCES goods_specifications (goods_id) ON DELETE CASCADE,
    main_specification  TEXT NOT NULL,
    image_url           TEXT NOT NULL,
    PRIMARY KEY (goods_id, main_specification)
);

-- Events for the platform, written in the same transaction as the change that causes them.
-- `seq` orders them; delivery state lives beside the event.
CREATE TABLE webhook_outbox (
    seq              BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    app_id           TEXT,
    payload          TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_attempt_at);

-- Idempotency-Key answers, per team: the same key and body replay the stored answer.
CREATE TABLE idempotency_keys (
    team_id          TEXT NOT NULL REFERENCES teams (team_id),
    idempotency_key  TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    response_status  BIGINT,
    response_body    TEXT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (team_id, idempotency_key)
);
