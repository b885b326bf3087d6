//! Teams and their API keys. Keys are random 256-bit secrets; only their SHA-256 is stored,
//! which is enough for secrets of that entropy (no slow hash needed).

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyExecutor;
use uuid::Uuid;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub team_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A key as shown once to its owner.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key_id: String,
    pub api_key: String,
}

/// What a presented key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub team_id: String,
    pub key_id: String,
}

pub fn hash_key(api_key: &str) -> String {
    hex::encode(Sha256::digest(api_key.as_bytes()))
}

fn new_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("pw_{}", hex::encode(bytes))
}

/// The longest team name, in characters (the API and the command line judge it the same way).
pub const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum NewTeamError {
    #[error("team name must be 1 to {MAX_NAME_CHARS} characters")]
    Name,
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// A team with its first key, in one transaction.
pub async fn create_with_key(store: &super::Store, name: &str) -> Result<(Team, IssuedKey), NewTeamError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(NewTeamError::Name);
    }
    let mut tx = store.begin().await?;
    let team = create_team(&mut *tx, name).await?;
    let key = issue_key(&mut *tx, &team.team_id).await?;
    tx.commit().await.map_err(super::StoreError::from)?;
    Ok((team, key))
}

pub async fn create_team<'e>(db: impl AnyExecutor<'e>, name: &str) -> StoreResult<Team> {
    let team = Team { team_id: Uuid::new_v4().to_string(), name: name.to_string(), created_at: unix_now() };
    sqlx::query("INSERT INTO teams (team_id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&team.team_id)
        .bind(&team.name)
        .bind(team.created_at)
        .execute(db)
        .await?;
    Ok(team)
}

pub async fn issue_key<'e>(db: impl AnyExecutor<'e>, team_id: &str) -> StoreResult<IssuedKey> {
    let issued = IssuedKey { key_id: Uuid::new_v4().to_string(), api_key: new_api_key() };
    sqlx::query("INSERT INTO api_keys (key_id, team_id, key_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&issued.key_id)
        .bind(team_id)
        .bind(hash_key(&issued.api_key))
        .bind(unix_now())
        .execute(db)
        .await?;
    Ok(issued)
}

pub async fn get_team<'e>(db: impl AnyExecutor<'e>, team_id: &str) -> StoreResult<Option<Team>> {
    let row = sqlx::query("SELECT team_id, name, created_at FROM teams WHERE team_id = $1")
        .bind(team_id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| Team { team_id: r.get("team_id"), name: r.get("name"), created_at: r.get("created_at") }))
}

/// The team a live (not revoked) key belongs to.
pub async fn find_key_owner<'e>(db: impl AnyExecutor<'e>, api_key: &str) -> StoreResult<Option<KeyOwner>> {
    let row = sqlx::query("SELECT team_id, key_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(hash_key(api_key))
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| KeyOwner { team_id: r.get("team_id"), key_id: r.get("key_id") }))
}

/// Revokes a key of the team; false when the team has no such live key.
pub async fn revoke_key<'e>(db: impl AnyExecutor<'e>, team_id: &str, key_id: &str) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND team_id = $3 AND revoked_at IS NULL")
            .bind(unix_now())
            .bind(key_id)
            .bind(team_id)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A key as the operator sees it: never the secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Every team, newest first, with its keys (newest first).
pub async fn list_with_keys<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Vec<(Team, Vec<KeyRow>)>> {
    let rows = sqlx::query(
        "SELECT t.team_id, t.name, t.created_at, k.key_id, k.created_at AS key_created_at, k.revoked_at \
         FROM teams t LEFT JOIN api_keys k ON k.team_id = t.team_id \
         ORDER BY t.created_at DESC, t.team_id, k.created_at DESC, k.key_id",
    )
    .fetch_all(db)
    .await?;
    let mut teams: Vec<(Team, Vec<KeyRow>)> = Vec::new();
    for r in rows {
        let team_id: String = r.try_get("team_id")?;
        if teams.last().is_none_or(|(t, _)| t.team_id != team_id) {
            teams.push((Team { team_id, name: r.try_get("name")?, created_at: r.try_get("created_at")? }, Vec::new()));
        }
        if let Some(key_id) = r.try_get::<Option<String>, _>("key_id")? {
            let key = KeyRow { key_id, created_at: r.try_get("key_created_at")?, revoked_at: r.try_get("revoked_at")? };
            teams.last_mut().expect("pushed above").1.push(key);
        }
    }
    Ok(teams)
}
