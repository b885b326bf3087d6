//! Reading typed values out of text columns (hashes, addresses, base units are TEXT so both
//! backends hold them alike): one helper per kind, naming the table and column when a stored
//! value does not parse.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, StoreResult};

/// How an address is written into a text column: lowercase hex with `0x`, so lookups by
/// address compare equal whatever case a caller had.
pub fn address_text(a: &alloy::primitives::Address) -> String {
    format!("{a:#x}")
}

/// A text column parsed as `T` (a hash, an address, a U256 of base units, a decimal).
pub fn parsed<T: FromStr>(row: &AnyRow, table: &str, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| StoreError::Corrupt(format!("{table}.{column} {text:?}")))
}

/// The same for a nullable column.
pub fn parsed_opt<T: FromStr>(row: &AnyRow, table: &str, column: &str) -> StoreResult<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| t.parse().map_err(|_| StoreError::Corrupt(format!("{table}.{column} {t:?}")))).transpose()
}

/// A base-unit amount (an integer string) read from `what`.
pub fn base_units(text: &str, what: &str) -> StoreResult<alloy::primitives::U256> {
    crate::money::parse_base_units(text).ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?}")))
}
