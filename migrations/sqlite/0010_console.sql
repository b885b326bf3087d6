-- 0010: the operator console's orders table pages newest first by (created_at, order_id)
-- (keyset, never OFFSET), with or without a status filter, at a million orders.
CREATE INDEX orders_created ON orders (created_at, order_id);
CREATE INDEX orders_status_created ON orders (status, created_at, order_id);
CREATE INDEX orders_team_created ON orders (team_id, created_at, order_id);
CREATE INDEX chain_transfers_tx ON chain_transfers (tx_hash);
CREATE INDEX deposits_time ON deposits (deposit_time);
