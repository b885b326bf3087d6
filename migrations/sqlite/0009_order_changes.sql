-- 0009: order_changes (what the recorder looks at) and deposit_filter (the saved index filter).
-- Orders whose payer-visible view may have changed and that the order-event recorder has not
-- looked at since. Written by triggers in the transaction that makes the change, whichever
-- process makes it, so the recorder reads what changed (not history, not a host's clock).
-- `version` grows with each change: the recorder removes a row only at the version it viewed.
CREATE TABLE order_changes (
    order_id TEXT PRIMARY KEY,
    version  BIGINT NOT NULL
);
CREATE TRIGGER order_changes_order_insert AFTER INSERT ON orders BEGIN
    INSERT INTO order_changes (order_id, version) VALUES (NEW.order_id, 1)
    ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
END;
CREATE TRIGGER order_changes_order_update AFTER UPDATE ON orders BEGIN
    INSERT INTO order_changes (order_id, version) VALUES (NEW.order_id, 1)
    ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
END;
CREATE TRIGGER order_changes_transfer_insert AFTER INSERT ON chain_transfers WHEN NEW.order_id IS NOT NULL BEGIN
    INSERT INTO order_changes (order_id, version) VALUES (NEW.order_id, 1)
    ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
END;
CREATE TRIGGER order_changes_transfer_update AFTER UPDATE ON chain_transfers WHEN NEW.order_id IS NOT NULL BEGIN
    INSERT INTO order_changes (order_id, version) VALUES (NEW.order_id, 1)
    ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
END;
CREATE TRIGGER order_changes_transfer_delete AFTER DELETE ON chain_transfers WHEN OLD.order_id IS NOT NULL BEGIN
    INSERT INTO order_changes (order_id, version) VALUES (OLD.order_id, 1)
    ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
END;

-- The deposit index's Bloom filter of every address ever issued, saved so a start reads it
-- and the orders after `read_upto` instead of every order ever taken. One row.
CREATE TABLE deposit_filter (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    read_upto BIGINT NOT NULL,
    capacity  BIGINT NOT NULL,
    items     BIGINT NOT NULL,
    bits      BLOB NOT NULL,
    saved_at  BIGINT NOT NULL
);
