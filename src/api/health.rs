//! Liveness and readiness. `/healthz` answers while the process serves; `/readyz` also needs
//! the database, and the watcher's view of the chain: its head known (read by the watcher, or
//! on standby from the database) and no problem reported. It asks the node nothing itself, so
//! polling it costs no RPC calls; the watcher marks the RPC failing after repeated failures.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always "ok" while the process serves.
    pub status: &'static str,
    /// The first chain's: "active" while this process holds its watcher lease, else "standby".
    pub watcher: &'static str,
    pub processed_block: u64,
    /// The first chain's head minus its processed block.
    pub behind_blocks: u64,
    /// Each configured chain's watcher, the first first.
    pub chains: Vec<ChainHealth>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainHealth {
    pub name: String,
    pub chain_id: u64,
    /// "active" while this process watches the chain, else "standby" (another process does).
    pub watcher: &'static str,
    pub head: u64,
    pub processed_block: u64,
    /// The head minus the processed block (more than 1,000: the watcher is catching up).
    pub behind_blocks: u64,
    pub caught_up: bool,
    /// Why the chain's watcher cannot go on, if it cannot.
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub status: &'static str,
    /// The first chain's head.
    pub chain_head: u64,
    /// Every chain's head.
    pub chains: Vec<ChainHead>,
    /// What works less than it should while the service is ready (a relayer too poor to pay
    /// gas: gasless payments are refused, wallet transfers go on).
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainHead {
    pub name: String,
    pub chain_id: u64,
    pub head: u64,
}

fn role(leader: bool) -> &'static str {
    if leader { "active" } else { "standby" }
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    summary = "Liveness, with the watcher's role and progress",
    responses((status = 200, body = Health))
)]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let chains = state
        .chains
        .iter()
        .map(|c| ChainHealth {
            name: c.name.clone(),
            chain_id: c.chain_id,
            watcher: role(c.status.is_leader()),
            head: c.status.head(),
            processed_block: c.status.processed(),
            behind_blocks: c.status.behind(),
            caught_up: c.status.is_caught_up(),
            problem: c.status.problem(),
        })
        .collect();
    Json(Health {
        status: "ok",
        watcher: role(state.chain.is_leader()),
        processed_block: state.chain.processed(),
        behind_blocks: state.chain.behind(),
        chains,
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    summary = "Readiness: the database and the RPC node answer, and the watcher can go on",
    responses((status = 200, body = Ready), (status = 503, description = "A price, the database or the node is unavailable", body = ErrorBody))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.store.ping().await.map_err(|_| ApiError::Unavailable("database unreachable".into()))?;
    // Every chain must be watchable; the message names the one that is not.
    let several = state.chains.iter().count() > 1;
    for c in state.chains.iter() {
        let named = |why: String| if several { format!("chain {} ({}): {why}", c.name, c.chain_id) } else { why };
        if let Some(problem) = c.status.problem() {
            return Err(ApiError::Unavailable(named(problem)));
        }
        if !c.status.is_verified() {
            return Err(ApiError::Unavailable(named("the RPC node has not answered yet".into())));
        }
        if c.status.head() == 0 {
            return Err(ApiError::Unavailable(named(
                "the chain's head is not known yet (the watcher has not read it)".into(),
            )));
        }
    }
    let chains = state
        .chains
        .iter()
        .map(|c| ChainHead { name: c.name.clone(), chain_id: c.chain_id, head: c.status.head() })
        .collect();
    let warnings = crate::payments::gasless::relayer_warnings(&state.config);
    Ok(Json(Ready { status: "ready", chain_head: state.chain.head(), chains, warnings }))
}
