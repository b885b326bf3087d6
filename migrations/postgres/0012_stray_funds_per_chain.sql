-- An order's open stray funds are kept per (chain, token): the same token address can be two
-- tokens on two chains (the devnet's ANKR and USDT_L2), and the index without the chain made
-- the second chain's row collide with the first's and every later step of that chain fail.
DROP INDEX stray_funds_open;
CREATE UNIQUE INDEX stray_funds_open ON stray_funds (order_id, chain_id, token_address) WHERE status = 'unattributed';
