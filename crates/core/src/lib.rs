//! paywatch's pure core: the decisions about money that must never be wrong, with no I/O, no
//! async and no database, so they build and test in seconds and mutation testing can run over
//! them. The watcher's trust rule (`completeness`: when an RPC answer is believed, under any
//! routing; `one_node`: the cheaper tie for an endpoint declared to keep a batch on one node),
//! the chain's pace (`pace`), and the money model of an order (`order_state`, `order_money`, `units`).

pub mod completeness;
pub mod one_node;
pub mod order_money;
pub mod order_state;
pub mod pace;
pub mod units;
