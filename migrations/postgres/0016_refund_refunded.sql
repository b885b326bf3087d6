-- A refund that reached its payer at depth reads `refunded`, as its fund does (it read
-- `confirmed`, a word the books use for money coming in).
ALTER TABLE refunds DROP CONSTRAINT IF EXISTS refunds_status_check;
UPDATE refunds SET status = 'refunded' WHERE status = 'confirmed';
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check
    CHECK (status IN ('open', 'claimed', 'approved', 'sent', 'refunded', 'failed'));
