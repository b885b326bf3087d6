-- 0009: order_changes (what the recorder looks at) and deposit_filter (the saved index filter).
-- Orders whose payer-visible view may have changed and that the order-event recorder has not
-- looked at since. Written by triggers in the transaction that makes the change, whichever
-- process makes it, so the recorder reads what changed (not history, not a host's clock).
-- `version` grows with each change: the recorder removes a row only at the version it viewed.
CREATE TABLE order_changes (
    order_id TEXT PRIMARY KEY,
    version  BIGINT NOT NULL
);
CREATE FUNCTION note_order_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.order_id;
    ELSE
        changed := NEW.order_id;
    END IF;
    IF changed IS NOT NULL THEN
        INSERT INTO order_changes (order_id, version) VALUES (changed, 1)
        ON CONFLICT (order_id) DO UPDATE SET version = order_changes.version + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER order_changes_order AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION note_order_change();
CREATE TRIGGER order_changes_transfer AFTER INSERT OR UPDATE OR DELETE ON chain_transfers
    FOR EACH ROW EXECUTE FUNCTION note_order_change();

-- The deposit index's Bloom filter of every address ever issued, saved so a start reads it
-- and the orders after `read_upto` instead of every order ever taken. One row.
CREATE TABLE deposit_filter (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    read_upto BIGINT NOT NULL,
    capacity  BIGINT NOT NULL,
    items     BIGINT NOT NULL,
    bits      BYTEA NOT NULL,
    saved_at  BIGINT NOT NULL
);
