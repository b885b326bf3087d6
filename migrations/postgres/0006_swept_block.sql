-- The block of the sweep that last emptied a deposit address: a confirmed transfer to the
-- address at or after it is swept again.
ALTER TABLE deposits ADD COLUMN swept_block BIGINT;
