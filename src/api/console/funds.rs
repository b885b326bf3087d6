//! Stray funds (money at deposit addresses that credits no order) with Apply-to-order and
//! Mark-refunded, by the admin API's rules (`api::funds`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, error_page, when};
use super::{Operator, Posted, back_to};
use crate::api::AppState;
use crate::api::funds::{apply_to_order, mark_refunded};
use crate::money::format_base_units;
use crate::store::stray_funds::{self, Filter};

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let funds = match stray_funds::list(state.store.pool(), &Filter::default(), 500).await {
        Ok(f) => f,
        Err(e) => return error_page(Some(&op), e.into()),
    };
    let book = state.config.token_book();
    let body = html! {
        @if funds.is_empty() { p id="no-funds" { "No stray funds." } } @else {
            div class="scroll" { table id="funds" {
                caption { "Money that credits no order, newest first" }
                thead { tr { th scope="col" { "Order" } th scope="col" { "Reason" } th scope="col" { "Token" } th scope="col" { "Amount" }
                    th scope="col" { "State" } th scope="col" { "Since" } th scope="col" { "Action" } } }
                tbody { @for f in &funds {
                    @let entry = f.token.parse().ok().and_then(|a| book.at(f.chain_id as u64, a));
                    @let amount = match (entry, crate::money::parse_base_units(&f.amount_base)) {
                        (Some(e), Some(units)) => format!("{} {}", format_base_units(units, e.decimals), e.token.as_str()),
                        _ => format!("{} base units of {}", f.amount_base, f.token),
                    };
                    tr data-fund-id=(f.fund_id) data-status=(f.status) {
                        td { a href={"/console/orders/" (f.order_id)} { code { (f.order_id) } } }
                        td { (f.reason.replace('_', " ")) } td { code { (f.token) } } td class="amount" { (amount) }
                        td { (f.status)
                            @if let Some(o) = &f.applied_order_id { " to " a href={"/console/orders/" (o)} { code { (o) } } }
                            @if let Some(t) = &f.refund_tx { " by " code { (t) } } }
                        td { (when(f.created_at)) }
                        td { @if f.status == "unattributed" {
                            form method="post" action={"/console/funds/" (f.fund_id) "/apply"} class="inline-form" {
                                (csrf_field(&op))
                                label for={"apply-" (f.fund_id)} { "Open order id" }
                                input type="text" id={"apply-" (f.fund_id)} name="order_id" required;
                                button type="submit" { "Apply to order" }
                            }
                            form method="post" action={"/console/funds/" (f.fund_id) "/refunded"} class="inline-form" {
                                (csrf_field(&op))
                                label for={"refund-" (f.fund_id)} { "Refund transaction hash" }
                                input type="text" id={"refund-" (f.fund_id)} name="tx_hash" required;
                                button type="submit" { "Mark refunded" }
                            }
                        } }
                    }
                } }
            } }
        }
    };
    super::layout::page(Some(&op), "/console/funds", "Stray funds", body).into_response()
}

#[derive(Deserialize)]
pub struct ApplyForm {
    #[serde(default)]
    order_id: String,
}

pub async fn apply(State(state): State<AppState>, Path(fund_id): Path<String>, posted: Posted<ApplyForm>) -> Response {
    match apply_to_order(&state, &fund_id, posted.form.order_id.trim()).await {
        Ok(_) => back_to(Some("/console/funds")),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    tx_hash: String,
}

pub async fn refunded(
    State(state): State<AppState>,
    Path(fund_id): Path<String>,
    posted: Posted<RefundForm>,
) -> Response {
    match mark_refunded(&state, &fund_id, &posted.form.tx_hash).await {
        Ok(_) => back_to(Some("/console/funds")),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}
