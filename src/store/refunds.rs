//! Refunds of stray funds: open (a claim link) → claimed (the payer gave an address) →
//! approved (by the operator, or automatically under the configured amount) → sent (nonce,
//! signed transaction and hash written before the broadcast) → refunded (confirmed at the chain's depth),
//! or failed (the transfer reverted; the fund is open again). Each step is a conditional
//! update from the state before it, so a second claim or approval changes nothing.

use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Refund {
    /// Also the claim link's capability: `/refund/{refund_id}`.
    pub refund_id: String,
    pub fund_id: String,
    pub team_id: String,
    pub chain_id: i64,
    #[sqlx(rename = "token_address")]
    pub token: String,
    /// Base units of the token.
    pub amount_base: String,
    /// Its USD value when created (what the limits count).
    pub usd: String,
    /// open, claimed, approved, sent, refunded (confirmed at depth) or failed.
    pub status: String,
    /// Where the payer asked it sent.
    pub to_address: Option<String>,
    /// The wallet that sends it (the refund key's address), once sent.
    pub from_address: Option<String>,
    pub nonce: Option<i64>,
    pub tx_hash: Option<String>,
    pub block_number: Option<i64>,
    /// The block it was mined in, to see a reorg take it even once confirmed.
    #[serde(skip)]
    pub block_hash: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub claimed_at: Option<i64>,
    pub approved_at: Option<i64>,
    pub confirmed_at: Option<i64>,
    #[serde(skip)]
    pub raw_tx: Option<String>,
    /// The chain's time when the claim link was made (its age counts from it).
    #[serde(skip)]
    pub link_chain_time: Option<i64>,
    /// When its current transaction was signed (a fee bump signs again).
    pub sent_at: Option<i64>,
    /// Earlier transactions of the same nonce a fee bump replaced, comma-separated: whichever
    /// is mined is the refund's.
    pub replaced_hashes: Option<String>,
}

pub(super) const COLUMNS: &str = "refund_id, fund_id, team_id, chain_id, token_address, amount_base, usd, status, to_address, \
                       from_address, nonce, raw_tx, tx_hash, block_number, block_hash, error, created_at, claimed_at, approved_at, \
                       confirmed_at, link_chain_time, sent_at, replaced_hashes";

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Refund> {
    Ok(<Refund as sqlx::FromRow<_>>::from_row(r)?)
}

pub struct NewRefund<'a> {
    pub fund_id: &'a str,
    pub team_id: &'a str,
    pub chain_id: u64,
    pub token: &'a str,
    pub amount_base: &'a str,
    pub usd: &'a str,
    /// The chain's time now (the claim link's age counts from it).
    pub chain_time: i64,
}

/// A new refund (its id a random 128-bit capability).
pub async fn insert<'e>(db: impl AnyExecutor<'e>, new: &NewRefund<'_>) -> StoreResult<String> {
    let refund_id = uuid::Uuid::new_v4().simple().to_string();
    let now = unix_now();
    sqlx::query(
        "INSERT INTO refunds (refund_id, fund_id, team_id, chain_id, token_address, amount_base, usd, status, \
         created_at, updated_at, link_chain_time) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8, $9)",
    )
    .bind(&refund_id)
    .bind(new.fund_id)
    .bind(new.team_id)
    .bind(new.chain_id as i64)
    .bind(new.token)
    .bind(new.amount_base)
    .bind(new.usd)
    .bind(now)
    .bind(new.chain_time)
    .execute(db)
    .await?;
    Ok(refund_id)
}

/// A refund the operator sent outside paywatch, recorded by its transaction: `refunded` at
/// once (it never counts in the approval limits: it was never approved here).
pub async fn insert_recorded<'e>(db: impl AnyExecutor<'e>, new: &NewRefund<'_>, tx_hash: &str) -> StoreResult<String> {
    let refund_id = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO refunds (refund_id, fund_id, team_id, chain_id, token_address, amount_base, usd, status, \
         from_address, tx_hash, created_at, confirmed_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'refunded', 'external', $8, $9, $9, $9)",
    )
    .bind(&refund_id)
    .bind(new.fund_id)
    .bind(new.team_id)
    .bind(new.chain_id as i64)
    .bind(new.token)
    .bind(new.amount_base)
    .bind(new.usd)
    .bind(tx_hash)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(refund_id)
}

/// The refund whose transaction is `tx_hash`, if any (a hash pays one refund).
pub async fn naming_hash<'e>(db: impl AnyExecutor<'e>, tx_hash: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT refund_id FROM refunds WHERE tx_hash = $1 LIMIT 1")
        .bind(tx_hash)
        .fetch_optional(db)
        .await?)
}

pub async fn get<'e>(db: impl AnyExecutor<'e>, refund_id: &str) -> StoreResult<Option<Refund>> {
    let sql = format!("SELECT {COLUMNS} FROM refunds WHERE refund_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(refund_id).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

/// Newest first, optionally of one status.
pub async fn list<'e>(db: impl AnyExecutor<'e>, status: Option<&str>, limit: i64) -> StoreResult<Vec<Refund>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM refunds WHERE ($1 = '' OR status = $1) ORDER BY created_at DESC, refund_id LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(status.unwrap_or_default()).bind(limit).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

/// open → claimed with the payer's address; false when it was not open.
pub async fn claim<'e>(db: impl AnyExecutor<'e>, refund_id: &str, to: &str) -> StoreResult<bool> {
    let now = unix_now();
    let done = sqlx::query(
        "UPDATE refunds SET status = 'claimed', to_address = $2, claimed_at = $3, updated_at = $3 \
         WHERE refund_id = $1 AND status = 'open'",
    )
    .bind(refund_id)
    .bind(to)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// claimed → approved; false when it was not claimed.
pub async fn approve<'e>(db: impl AnyExecutor<'e>, refund_id: &str) -> StoreResult<bool> {
    let now = unix_now();
    let done = sqlx::query(
        "UPDATE refunds SET status = 'approved', approved_at = $2, updated_at = $2 WHERE refund_id = $1 AND status = 'claimed'",
    )
    .bind(refund_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Holds the lock of the day's refund sum until the transaction ends: approvals read the sum
/// and add to it one after the other, in every process (PostgreSQL: a transaction-scoped
/// advisory lock; SQLite's write transactions are serialized already).
pub async fn lock_the_day(tx: &mut super::Tx) -> StoreResult<()> {
    /// "refunds" in ASCII, a key no other advisory lock of paywatch uses.
    const KEY: i64 = 0x72_65_66_75_6e_64_73;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS held").bind(KEY).execute(&mut **tx).await?;
    }
    Ok(())
}

/// USD of refunds approved since `since` (approved, sent, refunded; not failed).
pub async fn approved_usd_since<'e>(db: impl AnyExecutor<'e>, since: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT usd FROM refunds WHERE approved_at >= $1 AND status IN ('approved', 'sent', 'refunded')",
    )
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// The next nonce of `from` on `chain_id` by the refunds it sent (None: none yet).
pub async fn next_nonce<'e>(db: impl AnyExecutor<'e>, chain_id: u64, from: &str) -> StoreResult<Option<i64>> {
    let max: Option<i64> =
        sqlx::query_scalar("SELECT MAX(nonce) FROM refunds WHERE chain_id = $1 AND from_address = $2")
            .bind(chain_id as i64)
            .bind(from)
            .fetch_one(db)
            .await?;
    Ok(max.map(|n| n + 1))
}

/// What a refund's transaction is, once decided: written before it is broadcast.
pub struct Intent<'a> {
    pub from: &'a str,
    pub nonce: Option<i64>,
    pub raw_tx: Option<&'a str>,
    pub tx_hash: &'a str,
}

/// approved → sent with its transaction; false when it was not approved (another process, or
/// the same refund twice).
pub async fn record_sent<'e>(db: impl AnyExecutor<'e>, refund_id: &str, intent: &Intent<'_>) -> StoreResult<bool> {
    let now = unix_now();
    let done = sqlx::query(
        "UPDATE refunds SET status = 'sent', from_address = $2, nonce = $3, raw_tx = $4, tx_hash = $5, sent_at = $6, \
         updated_at = $6, error = NULL WHERE refund_id = $1 AND status = 'approved'",
    )
    .bind(refund_id)
    .bind(intent.from)
    .bind(intent.nonce)
    .bind(intent.raw_tx)
    .bind(intent.tx_hash)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A sent refund's transaction replaced by `raw_tx` (same nonce, higher fees); the old hash is
/// kept among the replaced. False when its transaction is no longer `old_hash` (another pass
/// bumped it, or it settled).
pub async fn record_bump<'e>(
    db: impl AnyExecutor<'e>,
    refund_id: &str,
    old_hash: &str,
    raw_tx: &str,
    tx_hash: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE refunds SET raw_tx = $3, tx_hash = $4, sent_at = $5, updated_at = $5, \
         replaced_hashes = CASE WHEN replaced_hashes IS NULL THEN $2 ELSE replaced_hashes || ',' || $2 END \
         WHERE refund_id = $1 AND status = 'sent' AND tx_hash = $2",
    )
    .bind(refund_id)
    .bind(old_hash)
    .bind(raw_tx)
    .bind(tx_hash)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A sent refund's replaced transaction `tx_hash` is the one mined: it is the refund's again.
pub async fn mined_instead<'e>(db: impl AnyExecutor<'e>, refund_id: &str, tx_hash: &str) -> StoreResult<()> {
    sqlx::query("UPDATE refunds SET tx_hash = $2, updated_at = $3 WHERE refund_id = $1 AND status = 'sent'")
        .bind(refund_id)
        .bind(tx_hash)
        .bind(unix_now())
        .execute(db)
        .await?;
    Ok(())
}

/// Where a sent refund's transaction is now (None: not on the chain, e.g. reorged out).
pub async fn set_block<'e>(db: impl AnyExecutor<'e>, refund_id: &str, block: Option<(i64, &str)>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE refunds SET block_number = $2, block_hash = $3, updated_at = $4 WHERE refund_id = $1 AND status = 'sent'",
    )
    .bind(refund_id)
    .bind(block.map(|b| b.0))
    .bind(block.map(|b| b.1))
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(())
}

/// Refunds confirmed since `since` (by when they were confirmed): a reorg deeper than the
/// confirmations may still take one.
pub async fn confirmed_since<'e>(db: impl AnyExecutor<'e>, since: i64) -> StoreResult<Vec<Refund>> {
    let sql = format!("SELECT {COLUMNS} FROM refunds WHERE status = 'refunded' AND confirmed_at >= $1");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

/// refunded → sent again: its block left the chain (the job sends the same bytes again).
pub async fn unconfirm<'e>(db: impl AnyExecutor<'e>, refund_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE refunds SET status = 'sent', block_number = NULL, block_hash = NULL, confirmed_at = NULL, \
         updated_at = $2 WHERE refund_id = $1 AND status = 'refunded'",
    )
    .bind(refund_id)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// sent → refunded (confirmed at depth) or failed; false when it was not sent.
pub async fn settle<'e>(
    db: impl AnyExecutor<'e>,
    refund_id: &str,
    confirmed: bool,
    error: Option<&str>,
) -> StoreResult<bool> {
    let now = unix_now();
    let done = sqlx::query(
        "UPDATE refunds SET status = $2, error = $3, confirmed_at = CASE WHEN $2 = 'refunded' THEN $4 ELSE NULL END, \
         updated_at = $4 WHERE refund_id = $1 AND status = 'sent'",
    )
    .bind(refund_id)
    .bind(if confirmed { "refunded" } else { "failed" })
    .bind(error)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// open, claimed or approved → failed with why (nothing was sent); false when it was sent or
/// settled already.
pub async fn cancel_unsent<'e>(db: impl AnyExecutor<'e>, refund_id: &str, why: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE refunds SET status = 'failed', error = $2, updated_at = $3 \
         WHERE refund_id = $1 AND status IN ('open', 'claimed', 'approved')",
    )
    .bind(refund_id)
    .bind(why)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Why an approved refund is not sent yet (the wallet's float is short, say); shown to the
/// operator, cleared when it is sent.
pub async fn note_problem<'e>(db: impl AnyExecutor<'e>, refund_id: &str, problem: &str) -> StoreResult<()> {
    sqlx::query("UPDATE refunds SET error = $2, updated_at = $3 WHERE refund_id = $1 AND status = 'approved'")
        .bind(refund_id)
        .bind(problem)
        .bind(unix_now())
        .execute(db)
        .await?;
    Ok(())
}
