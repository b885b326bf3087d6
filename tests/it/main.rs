//! paywatch's integration tests: one binary, real parts only (anvil, SQLite files, PostgreSQL).
//! A part that cannot be reached fails the test with its name; nothing is skipped in silence.

#[macro_use]
mod support;

mod architecture;
mod behind_a_proxy;
mod card_faults;
mod cards_and_lists;
mod catalog;
mod chain_truth;
mod chains;
mod checkout_page;
mod checkout_wallet;
mod cli_check;
mod console;
mod contracts;
mod devnet;
mod docs;
mod exports;
mod flat_cost;
mod gasless;
mod isolation_and_fuzz;
mod jobs;
mod ledger_races;
mod live;
mod metrics;
mod one_node;
mod openapi;
mod payments;
mod prices;
mod products;
mod read_ahead;
mod reconcile;
mod refunds;
mod resilience;
mod soak;
mod storage;
mod stray_funds;
mod sweep;
mod untrusted_rpc;
mod webhooks;
mod x402;
