-- The exports read each book in (time, id) order, a keyset page at a time: an index in that
-- order makes each page a short range scan instead of a sort of the whole table.
CREATE INDEX deposits_time_id ON deposits (deposit_time, deposit_id);
CREATE INDEX stray_funds_created ON stray_funds (created_at, fund_id);
CREATE INDEX stray_funds_refunded ON stray_funds (updated_at, fund_id) WHERE status = 'refunded';
