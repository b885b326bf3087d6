-- The chain's time when a refund's claim link was made: `[refunds] claim_ttl_days` counts from
-- it by the chain's clock (created_at is the host's). Refunds made before keep NULL and count
-- from created_at.
ALTER TABLE refunds ADD COLUMN link_chain_time BIGINT;
-- The hashes of a refund's earlier transactions (same nonce, lower fees) that a fee bump
-- replaced, comma-separated: whichever of them is mined is the refund's.
ALTER TABLE refunds ADD COLUMN replaced_hashes TEXT;
