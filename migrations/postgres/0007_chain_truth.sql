-- The chain is the clock: each transfer keeps its block's timestamp (lateness is judged by
-- it), and the cursor the timestamp of the last processed block (expiry waits for it).
ALTER TABLE chain_transfers ADD COLUMN block_time BIGINT;
ALTER TABLE chain_cursor ADD COLUMN block_time BIGINT;
-- Only transfers still confirming are walked each step.
CREATE INDEX chain_transfers_seen ON chain_transfers (chain_id, block_number) WHERE state = 'seen';

-- A monotonic sequence for the watcher's deposit-address index: it refreshes by `seq`, never
-- by a host's clock.
ALTER TABLE orders ADD COLUMN seq BIGSERIAL;
CREATE UNIQUE INDEX orders_seq ON orders (seq);

-- What a credited payment changed on its app, so a reorg deeper than the confirmations can
-- undo exactly that: the app's status and lifetime before it.
ALTER TABLE deposits ADD COLUMN app_prev_status TEXT;
ALTER TABLE deposits ADD COLUMN app_prev_start BIGINT;
ALTER TABLE deposits ADD COLUMN app_prev_end BIGINT;

-- `suspended`: an app that had run and whose payment a reorg took back.
ALTER TABLE apps DROP CONSTRAINT apps_status_check;
ALTER TABLE apps ADD CONSTRAINT apps_status_check
    CHECK (status IN ('pending_payment', 'active', 'suspended', 'expired', 'cancelled'));
