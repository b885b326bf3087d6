-- no-transaction
-- Mirrors the PostgreSQL 0007. SQLite cannot alter a CHECK constraint, so `apps` is rebuilt
-- (the documented way: foreign keys off, copy, swap, check, on again), hence no-transaction.
PRAGMA foreign_keys = OFF;
BEGIN;

ALTER TABLE chain_transfers ADD COLUMN block_time BIGINT;
ALTER TABLE chain_cursor ADD COLUMN block_time BIGINT;
CREATE INDEX chain_transfers_seen ON chain_transfers (chain_id, block_number) WHERE state = 'seen';

-- SQLite serialises writers, so rowid order is commit order.
ALTER TABLE orders ADD COLUMN seq BIGINT;
UPDATE orders SET seq = rowid;
CREATE UNIQUE INDEX orders_seq ON orders (seq);
CREATE TRIGGER orders_seq_on_insert AFTER INSERT ON orders
BEGIN
    UPDATE orders SET seq = NEW.rowid WHERE rowid = NEW.rowid;
END;

ALTER TABLE deposits ADD COLUMN app_prev_status TEXT;
ALTER TABLE deposits ADD COLUMN app_prev_start BIGINT;
ALTER TABLE deposits ADD COLUMN app_prev_end BIGINT;

CREATE TABLE apps_new (
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
    status          TEXT NOT NULL CHECK (status IN ('pending_payment', 'active', 'suspended', 'expired', 'cancelled')),
    start_time      BIGINT,
    end_time        BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expiring_notice_for BIGINT
);
INSERT INTO apps_new SELECT app_id, team_id, name, cluster_id, namespace_name, chart_name, chart_repo, chart_ver,
    chart_desc, chart_icon_url, app_version, instance_type, enterprise, custom_values, cpu_limit, mem_limit,
    storage_limit, pay_method, status, start_time, end_time, created_at, updated_at, expiring_notice_for FROM apps;
DROP TABLE apps;
ALTER TABLE apps_new RENAME TO apps;
CREATE INDEX apps_team ON apps (team_id);

COMMIT;
PRAGMA foreign_keys = ON;
