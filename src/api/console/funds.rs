//! Stray funds (money at deposit addresses that credits no order) with Apply-to-order,
//! Refund-to-the-payer (a claim link) and Mark-refunded, the refunds with Approve, and the
//! exports for the books as downloads; by the admin API's rules (`api::funds`, `api::refunds`,
//! `api::exports`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{action_button, csrf_field, error_page, when};
use super::{Operator, Posted, back_to};
use crate::api::AppState;
use crate::api::funds::{apply_to_order, mark_refunded};
use crate::money::format_base_units;
use crate::store::stray_funds::{self, Filter};

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let lists = async {
        let db = state.store.pool();
        Ok::<_, crate::store::StoreError>((
            stray_funds::list(db, &Filter::default(), 500).await?,
            crate::store::refunds::list(db, None, 200).await?,
        ))
    };
    let (funds, refunds) = match lists.await {
        Ok(lists) => lists,
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
                            form method="post" action={"/console/funds/" (f.fund_id) "/refund"} class="inline-form refund" {
                                (csrf_field(&op))
                                label for={"refund-amount-" (f.fund_id)} { "Amount to refund (empty: all)" }
                                input type="text" id={"refund-amount-" (f.fund_id)} name="amount" inputmode="decimal";
                                button type="submit" { "Refund to the payer" }
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
        section aria-labelledby="refunds-h" {
            h2 id="refunds-h" { "Refunds" }
            @if refunds.is_empty() { p { "No refunds." } } @else {
                div class="scroll" { table id="refunds" {
                    caption { "Refunds, newest first: give the payer the claim link" }
                    thead { tr { th scope="col" { "Claim link" } th scope="col" { "Amount" } th scope="col" { "State" }
                        th scope="col" { "To" } th scope="col" { "Transaction" } th scope="col" { "Action" } } }
                    tbody { @for r in &refunds {
                        @let entry = r.token.parse().ok().and_then(|a| book.at(r.chain_id as u64, a));
                        tr data-refund-id=(r.refund_id) data-status=(r.status) {
                            td { a href={"/refund/" (r.refund_id)} { "/refund/" (r.refund_id) } }
                            td class="amount" { @match (entry, crate::money::parse_base_units(&r.amount_base)) {
                                (Some(e), Some(units)) => { (format_base_units(units, e.decimals)) " " (e.token.as_str()) " (" (r.usd) " USD)" }
                                _ => { (r.amount_base) }
                            } }
                            td { (r.status) @if let Some(e) = &r.error { " · " (e) } }
                            td { @if let Some(to) = &r.to_address { code { (to) } } }
                            td { @if let Some(h) = &r.tx_hash { code { (h) } } }
                            td { @if r.status == "claimed" {
                                (action_button(&op, &format!("/console/refunds/{}/approve", r.refund_id), "Approve", "/console/funds"))
                            } }
                        }
                    } }
                } }
            }
        }
        section aria-labelledby="exports-h" {
            h2 id="exports-h" { "Exports for the books" }
            form method="get" action="/console/exports/payments.csv" class="inline-form" id="export-payments" {
                label for="export-from" { "From (YYYY-MM-DD, UTC)" } input type="text" id="export-from" name="from";
                label for="export-to" { "To, excluded" } input type="text" id="export-to" name="to";
                button type="submit" { "Download payments (CSV)" }
            }
            p { a href="/console/exports/stray_funds.csv" download { "Download stray funds (CSV)" } " · "
                a href="/console/exports/refunds.csv" download { "Download refunds (CSV)" } }
        }
    };
    super::layout::page(Some(&op), "/console/funds", "Stray funds and refunds", body).into_response()
}

#[derive(Deserialize)]
pub struct NewRefundForm {
    #[serde(default)]
    amount: String,
}

pub async fn refund(
    State(state): State<AppState>,
    Path(fund_id): Path<String>,
    posted: Posted<NewRefundForm>,
) -> Response {
    let amount = Some(posted.form.amount.trim()).filter(|a| !a.is_empty());
    match crate::payments::refunds::create(&state.store, &state.config, &state.prices, &fund_id, amount).await {
        Ok(_) => back_to(Some("/console/funds")),
        Err(e) => error_page(Some(&posted.operator), e.into()),
    }
}

pub async fn approve(
    State(state): State<AppState>,
    Path(refund_id): Path<String>,
    posted: Posted<super::Back>,
) -> Response {
    match crate::payments::refunds::approve(&state.store, &state.config, &refund_id).await {
        Ok(_) => back_to(posted.form.back.as_deref()),
        Err(e) => error_page(Some(&posted.operator), e.into()),
    }
}

/// The export files, for a signed-in operator (the API's need the admin token).
pub async fn export(
    State(state): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<crate::api::exports::Period>,
) -> Response {
    let q = crate::api::exports::Period {
        from: q.from.filter(|f| !f.trim().is_empty()),
        to: q.to.filter(|t| !t.trim().is_empty()),
    };
    match crate::api::exports::file(&state, &name, &q).await {
        Ok(file) => file,
        Err(e) => error_page(Some(&op), e),
    }
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
