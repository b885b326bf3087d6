//! Money waiting at deposit addresses (per chain and token), the sweep ledger's recent rows,
//! and "Sweep now" when a signer is configured (the same sweep `paywatch sweep` runs).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{action_button, error_page, notice, when};
use super::{Operator, Posted};
use crate::api::AppState;
use crate::overview;
use crate::store::{StoreError, sweeps, unix_now};

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let read = async {
        let figures = overview::gather(&state.store, &state.config, unix_now()).await?;
        Ok::<_, StoreError>((figures.unswept, sweeps::list(state.store.pool(), None, 100).await?))
    }
    .await;
    let (unswept, recent) = match read {
        Ok(r) => r,
        Err(e) => return error_page(Some(&op), e.into()),
    };
    let can_sweep = state.config.signer.is_some() && state.config.deposits.is_some();
    let body = html! {
        section aria-labelledby="pending-h" {
            h2 id="pending-h" { "Waiting to be swept" }
            @if unswept.is_empty() { p id="nothing-unswept" { "Nothing: every confirmed deposit is swept." } } @else {
                table id="unswept" {
                    caption { "Confirmed money at deposit addresses, per chain and token" }
                    thead { tr { th scope="col" { "Chain" } th scope="col" { "Token" } th scope="col" { "Amount" } th scope="col" { "Addresses" } } }
                    tbody { @for u in &unswept { tr data-token=(u.token) data-chain-id=(u.chain_id) {
                        td { (u.chain) } td { (u.token) } td class="amount" { (u.amount) } td { (u.addresses) } } } }
                }
            }
            @if can_sweep {
                (action_button(&op, "/console/sweeps/run", "Sweep now", "/console/sweeps"))
            } @else {
                p { "Sweeping needs a [signer] key and [deposits] in the configuration." }
            }
        }
        section aria-labelledby="recent-h" {
            h2 id="recent-h" { "Recent sweep transactions" }
            @if recent.is_empty() { p { "No sweep yet." } } @else {
                div class="scroll" { table id="sweeps" {
                    caption { "The sweep ledger, newest first" }
                    thead { tr { th scope="col" { "Transaction" } th scope="col" { "Deposit address" } th scope="col" { "Token" }
                        th scope="col" { "Moved" } th scope="col" { "State" } th scope="col" { "Block" } th scope="col" { "Sent" } } }
                    tbody { @for s in &recent { tr data-state=(s.state) {
                        td { code { (s.tx_hash) } } td { code { (s.deposit_address) } } td { code { (s.token) } }
                        td class="amount" { (s.moved) } td { (s.state) @if let Some(e) = &s.error { " (" (e) ")" } }
                        td { @if let Some(b) = s.block_number { (b) } } td { (when(s.created_at)) }
                    } } }
                } }
            }
        }
    };
    super::layout::page(Some(&op), "/console/sweeps", "Sweeps", body).into_response()
}

pub async fn run(State(state): State<AppState>, posted: Posted<super::Back>) -> Response {
    let op = posted.operator;
    if state.config.signer.is_none() {
        return error_page(
            Some(&op),
            crate::api::error::ApiError::Conflict("no [signer] key is configured: nothing can sweep".into()),
        );
    }
    let chains = state.config.chains();
    let report = crate::jobs::sweep::sweep_chains(&state.store, &state.config, &chains).await;
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let failed = report.values().any(|r| r.error.is_some());
    notice(
        &op,
        "/console/sweeps",
        if failed { "Sweep: a chain failed" } else { "Swept" },
        html! {
            pre id="sweep-report" { (text) }
            p { a href="/console/sweeps" { "Back to sweeps" } }
        },
    )
}
