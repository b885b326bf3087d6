//! Card payment intents: written and committed before the processor is asked to charge, so a
//! charge is never made that nothing names. Each moves once out of `pending` (a conditional
//! update), whoever resolves it first: the request itself, a retry, or the recovery job.

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::apps::AppSpec;
use super::{StoreError, StoreResult, unix_now};

/// What a charge pays for, recorded once the card is charged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Purpose {
    /// CreateApp: the app is created with its first period.
    NewApp {
        spec: Box<AppSpec>,
        period: i64,
    },
    Extend {
        app_id: String,
        period: i64,
    },
    /// A cart order; the intent itself holds the stock (`product_id`, `qty`).
    Catalog {
        product_id: i64,
        qty: i64,
        selection: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    Pending,
    Recorded,
    Refunded,
    Failed,
}

impl IntentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Recorded => "recorded",
            IntentState::Refunded => "refunded",
            IntentState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => IntentState::Pending,
            "recorded" => IntentState::Recorded,
            "refunded" => IntentState::Refunded,
            "failed" => IntentState::Failed,
            other => return Err(StoreError::Corrupt(format!("card charge state {other:?}"))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Intent {
    /// The processor's idempotency reference, and the id of the order it records.
    pub charge_ref: String,
    pub team_id: String,
    pub card_id: String,
    pub usd: rust_decimal::Decimal,
    pub purpose: Purpose,
    pub request_key: Option<String>,
    pub fingerprint: String,
    pub state: IntentState,
    pub processor_charge_id: Option<String>,
    pub app_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str = "charge_ref, team_id, card_id, usd, purpose, request_key, fingerprint, state, \
                       processor_charge_id, app_id, error, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Intent> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("card charge {what}"));
    Ok(Intent {
        charge_ref: r.try_get("charge_ref")?,
        team_id: r.try_get("team_id")?,
        card_id: r.try_get("card_id")?,
        usd: super::columns::parsed(r, "card_charges", "usd")?,
        purpose: serde_json::from_str(&r.try_get::<String, _>("purpose")?).map_err(|_| corrupt("purpose"))?,
        request_key: r.try_get("request_key")?,
        fingerprint: r.try_get("fingerprint")?,
        state: IntentState::parse(&r.try_get::<String, _>("state")?)?,
        processor_charge_id: r.try_get("processor_charge_id")?,
        app_id: r.try_get("app_id")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Writes a pending intent (the caller commits it before charging).
pub async fn insert<'e>(db: impl AnyExecutor<'e>, i: &Intent) -> StoreResult<()> {
    let (product_id, qty) = match &i.purpose {
        Purpose::Catalog { product_id, qty, .. } => (Some(*product_id), Some(*qty)),
        _ => (None, None),
    };
    let now = unix_now();
    sqlx::query(
        "INSERT INTO card_charges (charge_ref, team_id, card_id, usd, purpose, request_key, fingerprint, state, \
         product_id, qty, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $10)",
    )
    .bind(&i.charge_ref)
    .bind(&i.team_id)
    .bind(&i.card_id)
    .bind(i.usd.to_string())
    .bind(serde_json::to_string(&i.purpose).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(i.request_key.as_deref())
    .bind(&i.fingerprint)
    .bind(product_id)
    .bind(qty)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'e>(db: impl AnyExecutor<'e>, charge_ref: &str) -> StoreResult<Option<Intent>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM card_charges WHERE charge_ref = $1")))
        .bind(charge_ref)
        .fetch_optional(db)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The intent an Idempotency-Key started (failed ones let go of their key).
pub async fn by_request_key<'e>(db: impl AnyExecutor<'e>, request_key: &str) -> StoreResult<Option<Intent>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM card_charges WHERE request_key = $1")))
        .bind(request_key)
        .fetch_optional(db)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The newest pending or recorded intent with this fingerprint made since `since`.
pub async fn recent_by_fingerprint<'e>(
    db: impl AnyExecutor<'e>,
    fingerprint: &str,
    since: i64,
) -> StoreResult<Option<Intent>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM card_charges WHERE fingerprint = $1 AND created_at >= $2 \
         AND state IN ('pending', 'recorded') ORDER BY created_at DESC LIMIT 1"
    )))
    .bind(fingerprint)
    .bind(since)
    .fetch_optional(db)
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Pending intents created before `before`, oldest first (for the recovery job).
pub async fn pending_before<'e>(db: impl AnyExecutor<'e>, before: i64, limit: i64) -> StoreResult<Vec<Intent>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM card_charges WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
    )))
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Moves a pending intent to `to`; false when it was no longer pending (resolved elsewhere).
/// A failed intent lets go of its Idempotency-Key, so the same key may try again.
pub async fn resolve<'e>(
    db: impl AnyExecutor<'e>,
    charge_ref: &str,
    to: IntentState,
    processor_charge_id: Option<&str>,
    app_id: Option<&str>,
    error: Option<&str>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE card_charges SET state = $1, processor_charge_id = COALESCE($2, processor_charge_id), \
         app_id = COALESCE($3, app_id), error = $4, updated_at = $5, \
         request_key = CASE WHEN $1 = 'failed' THEN NULL ELSE request_key END \
         WHERE charge_ref = $6 AND state = 'pending'",
    )
    .bind(to.as_str())
    .bind(processor_charge_id)
    .bind(app_id)
    .bind(error)
    .bind(unix_now())
    .bind(charge_ref)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The app a recorded intent created or extended.
pub async fn set_app<'e>(db: impl AnyExecutor<'e>, charge_ref: &str, app_id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE card_charges SET app_id = $1 WHERE charge_ref = $2")
        .bind(app_id)
        .bind(charge_ref)
        .execute(db)
        .await?;
    Ok(())
}
