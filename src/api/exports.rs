//! Exports for the books (`/admin/exports/*.csv`): credited payments, stray funds and refunds
//! within `[from, to)`, as CSV. Streamed a page at a time (`store::exports`), so a year of
//! payments never sits in memory; the first page is read before answering, so a database
//! that is down is a JSON 503 rather than an empty file.

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::admin::Admin;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::config::Config;
use crate::money::format_base_units;
use crate::store::exports::{self, After};
use crate::store::refunds::Refund;
use crate::store::stray_funds::Fund;
use crate::store::{Store, StoreResult};

/// Rows read per page.
const PAGE: i64 = 1_000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// Start, included: a date (`2026-11-01`, UTC), an RFC 3339 time or unix seconds.
    pub from: Option<String>,
    /// End, excluded, in the same forms.
    pub to: Option<String>,
}

fn moment(field: &str, text: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(default) };
    let bad = || ApiError::invalid(field, "must be a date (YYYY-MM-DD), an RFC 3339 time or unix seconds");
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

fn period(q: &Period) -> Result<(i64, i64), ApiError> {
    let (from, to) = (moment("from", q.from.as_deref(), 0)?, moment("to", q.to.as_deref(), i64::MAX)?);
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    Ok((from, to))
}

fn utc(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

/// One CSV record, quoted where needed.
fn record(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(fields).expect("writing CSV to memory");
    writer.into_inner().expect("flushing CSV to memory")
}

/// A book's header and how one of its rows reads; `read` returns a page after `After`.
trait Export: Send + 'static {
    type Row: Send;
    const HEADER: &'static [&'static str];
    fn read(
        &self,
        store: &Store,
        from: i64,
        to: i64,
        after: Option<&After>,
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send;
    fn key(&self, row: &Self::Row) -> After;
    fn fields(&self, row: &Self::Row) -> Vec<String>;
}

struct Payments;

impl Export for Payments {
    type Row = exports::PaymentLine;
    const HEADER: &'static [&'static str] = &[
        "paid_at",
        "paid_at_unix",
        "order_id",
        "team_id",
        "app_id",
        "pay_method",
        "chain_id",
        "token",
        "amount",
        "expected_amount",
        "overpaid",
        "usd",
        "late",
        "transaction_hash",
        "card_id",
    ];

    async fn read(&self, store: &Store, from: i64, to: i64, after: Option<&After>) -> StoreResult<Vec<Self::Row>> {
        exports::payments(store.pool(), from, to, after, PAGE).await
    }

    fn key(&self, row: &Self::Row) -> After {
        (row.paid_at, row.deposit_id.clone())
    }

    fn fields(&self, p: &Self::Row) -> Vec<String> {
        let over = p.expected_amount.as_deref().and_then(|e| {
            let (amount, expected) = (p.amount.parse::<rust_decimal::Decimal>().ok()?, e.parse().ok()?);
            (amount > expected).then(|| (amount - expected).normalize().to_string())
        });
        vec![
            utc(p.paid_at),
            p.paid_at.to_string(),
            p.order_id.clone(),
            p.team_id.clone(),
            p.app_id.clone().unwrap_or_default(),
            p.pay_method.clone(),
            p.chain_id.map(|c| c.to_string()).unwrap_or_default(),
            p.token.clone().unwrap_or_default(),
            p.amount.clone(),
            p.expected_amount.clone().unwrap_or_default(),
            over.unwrap_or_else(|| "0".into()),
            p.usd.clone(),
            p.late.to_string(),
            p.transaction_hash.clone().unwrap_or_default(),
            p.card_id.clone().unwrap_or_default(),
        ]
    }
}

/// An amount in token units where the token is configured (else empty), and its token's asset.
fn in_units(config: &Config, chain_id: i64, token: &str, base: &str) -> (String, String) {
    let entry = token.parse::<Address>().ok().and_then(|a| config.token_book().at(chain_id as u64, a));
    let amount = match (entry, base.parse::<U256>()) {
        (Some(e), Ok(units)) => format_base_units(units, e.decimals),
        _ => String::new(),
    };
    (amount, entry.map(|e| e.asset.clone()).unwrap_or_default())
}

/// Stray funds, by when each was found.
struct Funds {
    config: Arc<Config>,
}

impl Export for Funds {
    type Row = Fund;
    const HEADER: &'static [&'static str] = &[
        "at",
        "at_unix",
        "fund_id",
        "order_id",
        "team_id",
        "chain_id",
        "token",
        "asset",
        "deposit_address",
        "reason",
        "amount",
        "amount_base",
        "status",
        "applied_order_id",
        "refund_tx",
    ];

    async fn read(&self, store: &Store, from: i64, to: i64, after: Option<&After>) -> StoreResult<Vec<Self::Row>> {
        exports::funds(store.pool(), from, to, after, PAGE).await
    }

    fn key(&self, row: &Self::Row) -> After {
        (row.created_at, row.fund_id.clone())
    }

    fn fields(&self, f: &Self::Row) -> Vec<String> {
        let (amount, asset) = in_units(&self.config, f.chain_id, &f.token, &f.amount_base);
        vec![
            utc(f.created_at),
            f.created_at.to_string(),
            f.fund_id.clone(),
            f.order_id.clone(),
            f.team_id.clone(),
            f.chain_id.to_string(),
            f.token.clone(),
            asset,
            f.deposit_address.clone(),
            f.reason.clone(),
            amount,
            f.amount_base.clone(),
            f.status.clone(),
            f.applied_order_id.clone().unwrap_or_default(),
            f.refund_tx.clone().unwrap_or_default(),
        ]
    }
}

/// Refund records, one row each whatever its status, by when each was created. `refunded` and
/// `refunded_base` are what left (confirmed at depth, or recorded as sent outside paywatch):
/// the amount for a `refunded` row, 0 for every other status, so their sum is the money out.
struct Refunds {
    config: Arc<Config>,
}

impl Export for Refunds {
    type Row = Refund;
    const HEADER: &'static [&'static str] = &[
        "at",
        "at_unix",
        "refund_id",
        "fund_id",
        "team_id",
        "chain_id",
        "token",
        "asset",
        "amount",
        "amount_base",
        "usd",
        "status",
        "refunded",
        "refunded_base",
        "to_address",
        "from_address",
        "transaction_hash",
        "block_number",
        "confirmed_at",
        "error",
    ];

    async fn read(&self, store: &Store, from: i64, to: i64, after: Option<&After>) -> StoreResult<Vec<Self::Row>> {
        exports::refunds(store.pool(), from, to, after, PAGE).await
    }

    fn key(&self, row: &Self::Row) -> After {
        (row.created_at, row.refund_id.clone())
    }

    fn fields(&self, r: &Self::Row) -> Vec<String> {
        let (amount, asset) = in_units(&self.config, r.chain_id, &r.token, &r.amount_base);
        let left = r.status == "refunded";
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            utc(r.created_at),
            r.created_at.to_string(),
            r.refund_id.clone(),
            r.fund_id.clone(),
            r.team_id.clone(),
            r.chain_id.to_string(),
            r.token.clone(),
            asset,
            amount.clone(),
            r.amount_base.clone(),
            r.usd.clone(),
            r.status.clone(),
            if left { amount } else { "0".into() },
            if left { r.amount_base.clone() } else { "0".into() },
            opt(&r.to_address),
            opt(&r.from_address),
            opt(&r.tx_hash),
            r.block_number.map(|b| b.to_string()).unwrap_or_default(),
            r.confirmed_at.map(utc).unwrap_or_default(),
            opt(&r.error),
        ]
    }
}

/// The CSV answer: the header and the first page now, the rest as the client reads.
async fn stream<E: Export + Sync>(state: &AppState, export: E, q: &Period, name: &str) -> Result<Response, ApiError> {
    let (from, to) = period(q)?;
    let store = state.store.clone();
    let first = export.read(&store, from, to, None).await?;
    let head = record(&E::HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let pages = futures_util::stream::unfold(Some((first, head, export)), move |state| {
        let store = store.clone();
        async move {
            let (rows, mut out, export) = state?;
            if rows.is_empty() {
                return (!out.is_empty()).then(|| (Ok::<_, std::io::Error>(Bytes::from(out)), None));
            }
            for row in &rows {
                out.extend(record(&export.fields(row)));
            }
            let last = export.key(rows.last().expect("a page with rows"));
            let next = if (rows.len() as i64) < PAGE {
                Ok(Vec::new())
            } else {
                export.read(&store, from, to, Some(&last)).await
            };
            match next {
                Ok(next) => Some((Ok(Bytes::from(out)), Some((next, Vec::new(), export)))),
                // Cut the download short rather than end a file that looks whole.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(pages),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/admin/exports/payments.csv", tag = "admin",
    summary = "Credited payments in [from, to), oldest first, as CSV (streamed): one row per paid order, card or token",
    params(Period),
    responses((status = 200, description = "CSV with a header row", content_type = "text/csv", body = String),
        super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn payments_csv(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<Period>,
) -> Result<Response, ApiError> {
    file(&state, "payments.csv", &q).await
}

/// One of the export files by name (the API and the console's downloads).
pub async fn file(state: &AppState, name: &str, q: &Period) -> Result<Response, ApiError> {
    let config = state.config.clone();
    match name {
        "payments.csv" => stream(state, Payments, q, name).await,
        "stray_funds.csv" => stream(state, Funds { config }, q, name).await,
        "refunds.csv" => stream(state, Refunds { config }, q, name).await,
        _ => Err(ApiError::NotFound("export")),
    }
}

#[utoipa::path(
    get, path = "/admin/exports/stray_funds.csv", tag = "admin",
    summary = "Money that credits no order, found in [from, to), as CSV (streamed)",
    params(Period),
    responses((status = 200, description = "CSV with a header row", content_type = "text/csv", body = String),
        super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn stray_funds_csv(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<Period>,
) -> Result<Response, ApiError> {
    file(&state, "stray_funds.csv", &q).await
}

#[utoipa::path(
    get, path = "/admin/exports/refunds.csv", tag = "admin",
    summary = "Refund records created in [from, to), every status, as CSV (streamed): `refunded_base` sums the money that left",
    params(Period),
    responses((status = 200, description = "CSV with a header row", content_type = "text/csv", body = String),
        super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn refunds_csv(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<Period>,
) -> Result<Response, ApiError> {
    file(&state, "refunds.csv", &q).await
}
