//! The orders table (filters, search, keyset pages) and one order's detail: its view, the
//! transfers with explorer links, its timeline, its app and the app's webhook deliveries.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::Date;
use time::macros::format_description;

use super::encoding::encode;
use super::layout::{error_page, page, when};
use super::{Operator, webhooks};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::payments::order_view;
use crate::store::order_search::{self, After, OrderFilter, OrderRow};
use crate::store::{apps, order_events, orders, outbox};

pub const PAGE_SIZE: i64 = 50;
const STATUSES: [&str; 4] = ["awaiting_payment", "partially_paid", "paid", "expired"];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    team: Option<String>,
    pay_method: Option<String>,
    /// YYYY-MM-DD (UTC), inclusive.
    from: Option<String>,
    /// YYYY-MM-DD (UTC), inclusive.
    to: Option<String>,
    /// An order id, app id, deposit address or transaction hash.
    q: Option<String>,
    /// Where the page starts: "created_at.order_id" of the previous page's last row.
    after: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn day_start(field: &str, v: &str) -> Result<i64, ApiError> {
    let day = Date::parse(v, format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::invalid(field, "must be a date, YYYY-MM-DD"))?;
    Ok(day.midnight().assume_utc().unix_timestamp())
}

impl ListQuery {
    fn filter(&self, state: &AppState) -> Result<OrderFilter, ApiError> {
        let status = given(&self.status);
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(ApiError::invalid("status", format!("must be one of {}", STATUSES.join(", "))));
        }
        let pay_method = given(&self.pay_method);
        if let Some(m) = &pay_method {
            crate::api::types::pay_method(&state.config, "pay_method", m)?;
        }
        let after = match given(&self.after) {
            None => None,
            Some(a) => {
                let (at, id) = a.split_once('.').ok_or_else(|| ApiError::invalid("after", "is not a page mark"))?;
                let created_at = at.parse().map_err(|_| ApiError::invalid("after", "is not a page mark"))?;
                Some(After { created_at, order_id: id.to_string() })
            }
        };
        Ok(OrderFilter {
            status,
            team_id: given(&self.team),
            pay_method,
            created_from: given(&self.from).map(|d| day_start("from", &d)).transpose()?,
            created_before: given(&self.to).map(|d| day_start("to", &d).map(|t| t + 86_400)).transpose()?,
            after,
        })
    }

    /// This query's link with another page start.
    fn with_after(&self, after: &After) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("team", &self.team),
            ("pay_method", &self.pay_method),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = given(v) {
                pairs.push((k, v));
            }
        }
        pairs.push(("after", format!("{}.{}", after.created_at, after.order_id)));
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        format!("/console/orders?{}", query.join("&"))
    }
}

pub async fn list(State(state): State<AppState>, op: Operator, Query(q): Query<ListQuery>) -> Response {
    let found = async {
        if let Some(term) = given(&q.q) {
            return Ok::<_, ApiError>((order_search::search(state.store.pool(), &term, PAGE_SIZE).await?, None));
        }
        let filter = q.filter(&state)?;
        Ok(order_search::page(state.store.pool(), &filter, PAGE_SIZE).await?)
    }
    .await;
    match found {
        Ok((rows, next)) => {
            page(Some(&op), "/console/orders", "Orders", list_body(&state, &q, &rows, next.as_ref())).into_response()
        }
        Err(e) => error_page(Some(&op), e),
    }
}

fn selected(current: &Option<String>, value: &str) -> bool {
    current.as_deref() == Some(value)
}

fn list_body(state: &AppState, q: &ListQuery, rows: &[OrderRow], next: Option<&After>) -> Markup {
    let methods: Vec<String> = std::iter::once("CREDIT_CARD".to_string())
        .chain(state.config.tokens.keys().map(|t| t.as_str().to_string()))
        .collect();
    html! {
        form method="get" action="/console/orders" class="search" role="search" {
            label for="q" { "Order id, app id, deposit address or transaction hash" }
            input type="search" id="q" name="q" value=(q.q.clone().unwrap_or_default());
            button type="submit" { "Find" }
        }
        form method="get" action="/console/orders" class="filters" {
            div { label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for s in STATUSES { option value=(s) selected[selected(&q.status, s)] { (s) } }
                } }
            div { label for="pay_method" { "Pay method" }
                select id="pay_method" name="pay_method" {
                    option value="" { "any" }
                    @for m in &methods { option value=(m) selected[selected(&q.pay_method, m)] { (m) } }
                } }
            div { label for="team" { "Team id" } input type="text" id="team" name="team" value=(q.team.clone().unwrap_or_default()); }
            div { label for="from" { "Created from" } input type="date" id="from" name="from" value=(q.from.clone().unwrap_or_default()); }
            div { label for="to" { "Created to" } input type="date" id="to" name="to" value=(q.to.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() { p id="no-orders" { "No orders match." } } @else {
            div class="scroll" {
                table id="orders" {
                    caption { "Orders, newest first" }
                    thead { tr { th scope="col" { "Order" } th scope="col" { "Status" } th scope="col" { "Pay method" }
                        th scope="col" { "USD" } th scope="col" { "Amount" } th scope="col" { "Team" } th scope="col" { "Created" } } }
                    tbody {
                        @for r in rows {
                            tr data-order-id=(r.order_id) data-status=(r.status) {
                                td { a href={"/console/orders/" (r.order_id)} { code { (r.order_id) } } }
                                td { (r.status) } td { (r.pay_method) } td class="amount" { (r.usd) } td class="amount" { (r.amount) }
                                td { code { (r.team_id) } } td { (when(r.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        nav aria-label="Pages" class="pages" {
            a href="/console/orders" { "First page" }
            @if let Some(after) = next { " " a href=(q.with_after(after)) rel="next" id="next-page" { "Next page" } }
        }
    }
}

pub async fn detail(State(state): State<AppState>, op: Operator, Path(order_id): Path<String>) -> Response {
    match detail_body(&state, &op, &order_id).await {
        Ok(Some(body)) => page(Some(&op), "/console/orders", &format!("Order {order_id}"), body).into_response(),
        Ok(None) => error_page(Some(&op), ApiError::NotFound("order")),
        Err(e) => error_page(Some(&op), e),
    }
}

fn explorer_link(base: Option<&str>, kind: &str, value: &str) -> Markup {
    match base {
        Some(b) => {
            html! { a href={(b.trim_end_matches('/')) "/" (kind) "/" (value)} rel="noreferrer" { code { (value) } } }
        }
        None => html! { code { (value) } },
    }
}

async fn detail_body(state: &AppState, op: &Operator, order_id: &str) -> Result<Option<Markup>, ApiError> {
    let heads = state.chains.heads_or_ask().await;
    let Some(view) = order_view::load(&state.store, &state.config, &heads, None, order_id).await? else {
        return Ok(None);
    };
    let db = state.store.pool();
    let order = orders::get_any(db, order_id).await?.ok_or(ApiError::NotFound("order"))?;
    let timeline = order_events::timeline(db, order_id, 500).await?;
    let app = match &view.app_id {
        Some(app_id) => apps::get_app(db, &order.new.team_id, app_id).await?,
        None => None,
    };
    let deliveries = match &view.app_id {
        Some(app_id) => outbox::list(db, outbox::Which::App(app_id), 100).await?,
        None => Vec::new(),
    };
    let explorer = |chain_id: u64| state.config.chain_by_id(chain_id).and_then(|c| c.config.explorer.clone());
    let order_explorer = view.chain_id.and_then(explorer);
    let back = format!("/console/orders/{order_id}");
    Ok(Some(html! {
        section aria-labelledby="summary-h" {
            h2 id="summary-h" { "Summary" }
            dl class="facts" id="summary" {
                dt { "Status" } dd id="order-status" { (view.status) @if view.late { " (late)" } }
                dt { "Team" } dd { code { (order.new.team_id) } }
                dt { "Kind" } dd { (view.kind) }
                dt { "Pay method" } dd { (view.pay_method) }
                dt { "USD" } dd { (view.usd) }
                dt { "Expected" } dd { (view.expected) }
                dt { "Seen" } dd { (view.seen) }
                dt { "Confirmed" } dd { (view.confirmed) }
                dt { "Remaining" } dd { (view.remaining) }
                dt { "Overpaid" } dd { (view.overpaid) }
                @if let Some(a) = &view.address { dt { "Deposit address" } dd { (explorer_link(order_explorer.as_deref(), "address", a)) } }
                @if let Some(c) = &view.confirmations_required { dt { "Confirmations required" } dd { (c) } }
                dt { "Created" } dd { (when(view.created_at)) }
                dt { "Expires" } dd { (when(view.expires_at)) }
                @if let Some(p) = view.paid_at { dt { "Paid" } dd { (when(p)) } }
            }
        }
        section aria-labelledby="transfers-h" {
            h2 id="transfers-h" { "Transfers" }
            @if view.payments.is_empty() { p { "No transfer has reached the deposit address." } } @else {
                div class="scroll" { table id="transfers" {
                    caption { "Transfers to the deposit address" }
                    thead { tr { th scope="col" { "Chain" } th scope="col" { "Transaction" } th scope="col" { "Block" }
                        th scope="col" { "Amount" } th scope="col" { "State" } th scope="col" { "Confirmations" } th scope="col" { "From" } } }
                    tbody { @for p in &view.payments {
                        tr data-tx=(p.tx_hash) {
                            td { (p.chain_id) }
                            td { (explorer_link(explorer(p.chain_id).as_deref(), "tx", &p.tx_hash)) }
                            td { (p.block_number) @if let Some(t) = p.block_time { br; small { (when(t)) } } }
                            td class="amount" { (p.amount) @if !p.counted { " (another asset: not counted)" } }
                            td { (p.state) } td { (p.confirmations) }
                            td { (explorer_link(explorer(p.chain_id).as_deref(), "address", &p.from)) }
                        }
                    } }
                } }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 id="timeline-h" { "Timeline" }
            @if timeline.is_empty() { p { "No event recorded yet." } } @else {
                ol class="timeline" id="timeline" {
                    @for (seq, event, at) in &timeline { li data-seq=(seq) { strong { (event) } " · " (when(*at)) } }
                }
            }
        }
        section aria-labelledby="app-h" {
            h2 id="app-h" { "App" }
            @if let Some(app) = &app {
                dl class="facts" id="app" {
                    dt { "App id" } dd { code { (app.app_id) } }
                    dt { "Name" } dd { (app.spec.name) }
                    dt { "Status" } dd { (app.status.as_str()) }
                    @if let Some(s) = app.start_time { dt { "Start" } dd { (when(s)) } }
                    @if let Some(e) = app.end_time { dt { "End" } dd { (when(e)) } }
                }
            } @else { p { "This order has no app." } }
        }
        section aria-labelledby="deliveries-h" {
            h2 id="deliveries-h" { "Webhook deliveries of the app" }
            (webhooks::table(op, "order-deliveries", &deliveries, &back))
        }
    }))
}
