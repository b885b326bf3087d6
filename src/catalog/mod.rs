//! The product catalog. So far: goods specifications (seed 000) — their validation and
//! display prices. The hosting product configuration (seed 002) is still to come.

pub mod goods;
