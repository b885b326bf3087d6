//! The overview: each chain's progress (lag chart, endpoints, lease holder, a progress bar
//! while catching up), orders by status, the webhook backlog, unswept money and revenue.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::error_page;
use super::{Operator, chart};
use crate::api::AppState;
use crate::chain::leader;
use crate::chain::status::FAR_BEHIND;
use crate::overview::{self, ChainLine, Overview};
use crate::store::unix_now;

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    match render(&state).await {
        Ok(body) => page_with(&op, body).into_response(),
        Err(e) => error_page(Some(&op), e.into()),
    }
}

fn page_with(op: &Operator, body: Markup) -> Markup {
    super::layout::page(Some(op), "/console", "Overview", body)
}

/// Each chain as this process sees it, with who holds its watcher lease.
async fn chain_lines(state: &AppState) -> crate::store::StoreResult<Vec<ChainLine>> {
    let mut lines = Vec::new();
    for c in state.chains.iter() {
        let watcher = if c.status.is_leader() {
            "this process".to_string()
        } else {
            leader::holder(&state.store, c.chain_id).await?.unwrap_or_else(|| "nobody".into())
        };
        let head = c.status.head();
        lines.push(ChainLine {
            name: c.name.clone(),
            chain_id: c.chain_id,
            head: (head > 0).then_some(head),
            processed: c.status.processed(),
            caught_up: c.status.is_caught_up(),
            problem: c.status.problem(),
            watcher,
        });
    }
    Ok(lines)
}

async fn render(state: &AppState) -> crate::store::StoreResult<Markup> {
    let lines = chain_lines(state).await?;
    let figures = overview::gather(&state.store, &state.config, unix_now()).await?;
    let mut chains = Vec::new();
    for (line, c) in lines.iter().zip(state.chains.iter()) {
        let chain = state.config.chain_by_id(c.chain_id).expect("a watched chain is configured");
        let endpoints = overview::probe_endpoints(chain.config.rpc_http.urls()).await;
        chains.push(chain_section(line, &c.status, chain.config.start_block, &endpoints));
    }
    Ok(html! {
        div data-refresh="5000" {
            section aria-labelledby="chains-h" {
                h2 id="chains-h" { "Chains" }
                (chains_table(&lines))
                @for c in &chains { (c) }
            }
            (money_sections(&figures))
        }
    })
}

fn chains_table(lines: &[ChainLine]) -> Markup {
    html! {
        div class="scroll" {
            table id="chains" {
                caption { "Each chain's watcher" }
                thead { tr { th scope="col" { "Chain" } th scope="col" { "Chain id" } th scope="col" { "Head" }
                    th scope="col" { "Processed" } th scope="col" { "Behind" } th scope="col" { "Watcher" } th scope="col" { "Problem" } } }
                tbody {
                    @for l in lines {
                        tr data-chain-id=(l.chain_id) {
                            th scope="row" { (l.name) }
                            td { (l.chain_id) }
                            td class="head" { @if let Some(h) = l.head { (h) } @else { "unknown" } }
                            td class="processed" { (l.processed) }
                            td class="behind" { @if let Some(b) = l.behind() { (b) } @else { "?" } }
                            td { (l.watcher) }
                            td { @if let Some(p) = &l.problem { span class="bad" { (p) } } @else { "none" } }
                        }
                    }
                }
            }
        }
    }
}

fn chain_section(
    line: &ChainLine,
    status: &crate::chain::status::ChainStatus,
    start_block: u64,
    endpoints: &[overview::EndpointHealth],
) -> Markup {
    let behind = line.behind().unwrap_or(0);
    let samples = status.lag_samples();
    let id = format!("lag-{}", line.chain_id);
    html! {
        section class="chain" aria-labelledby={(id) "-h"} {
            h3 id={(id) "-h"} { (line.name) " (" (line.chain_id) ")" }
            @if behind > FAR_BEHIND {
                @let head = line.head.unwrap_or(0);
                @let rate = status.blocks_per_second();
                div class="catch-up" {
                    label for={(id) "-progress"} { "Catching up: " (behind) " blocks behind"
                        @if let Some(r) = rate { ", " (format!("{r:.1}")) " blocks/s"
                            @if r > 0.0 { ", about " (eta(behind as f64 / r)) " to go" } } }
                    progress id={(id) "-progress"} max=(head.saturating_sub(start_block).max(1))
                        value=(line.processed.saturating_sub(start_block)) {}
                }
            }
            div class="chart-box" { (chart::lag(&id, &line.name, &samples)) }
            table class="endpoints" {
                caption { "RPC endpoints of " (line.name) }
                thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Answer" } th scope="col" { "Time" } } }
                tbody {
                    @for e in endpoints {
                        tr {
                            td { (e.endpoint) }
                            @match &e.answer {
                                Ok(head) => td class="ok" { "block " (head) },
                                Err(why) => td class="bad" { (why) },
                            }
                            td { (e.millis) " ms" }
                        }
                    }
                }
            }
        }
    }
}

fn eta(secs: f64) -> String {
    let secs = secs.ceil() as u64;
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

fn money_sections(o: &Overview) -> Markup {
    let methods = o.pay_methods();
    let this_month = o.this_month();
    html! {
        section aria-labelledby="orders-h" {
            h2 id="orders-h" { "Orders" }
            ul class="counts" id="order-counts" {
                @for (status, n) in &o.orders {
                    li data-status=(status) { a href={"/console/orders?status=" (status)} { span class="n" { (n) } " " (status.replace('_', " ")) } }
                }
            }
        }
        section aria-labelledby="webhooks-h" {
            h2 id="webhooks-h" { "Webhooks" }
            ul class="counts" id="webhook-counts" {
                li data-state="pending" { a href="/console/webhooks" { span class="n" { (o.webhooks_pending) } " pending" } }
                li data-state="failed" { a href="/console/webhooks" { span class="n" { (o.webhooks_failed) } " failed" } }
            }
        }
        section aria-labelledby="unswept-h" {
            h2 id="unswept-h" { "Not yet swept" }
            @if o.unswept.is_empty() { p { "Nothing: every confirmed deposit is swept." } } @else {
                table id="unswept" {
                    caption { "Confirmed money at deposit addresses" }
                    thead { tr { th scope="col" { "Chain" } th scope="col" { "Token" } th scope="col" { "Amount" } th scope="col" { "Addresses" } } }
                    tbody { @for u in &o.unswept { tr data-token=(u.token) data-chain-id=(u.chain_id) {
                        td { (u.chain) } td { (u.token) } td class="amount" { (u.amount) } td { (u.addresses) } } } }
                }
            }
        }
        section aria-labelledby="revenue-h" {
            h2 id="revenue-h" { "Revenue" }
            table id="revenue-month" {
                caption { "This month (" (this_month.month) ", UTC), USD" }
                thead { tr { th scope="col" { "Pay method" } th scope="col" { "USD" } } }
                tbody {
                    @for (method, usd) in &this_month.by_method {
                        tr data-method=(method) { td { (method) } td class="amount" { (crate::money::cents_text(*usd)) } }
                    }
                    tr class="total" data-method="total" { th scope="row" { "Total" } td class="amount" { (crate::money::cents_text(this_month.total())) } }
                }
            }
            div class="chart-box" { (chart::revenue("revenue-chart", &o.months, &methods)) }
            ul class="legend" aria-label="Chart legend" {
                @for (i, m) in methods.iter().enumerate() {
                    li { svg width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(chart::colour(i)) {} } " " (m) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::status::ChainStatus;

    fn line(head: u64, processed: u64) -> ChainLine {
        ChainLine {
            name: "main".into(),
            chain_id: 1,
            head: Some(head),
            processed,
            caught_up: false,
            problem: None,
            watcher: "this process".into(),
        }
    }

    #[test]
    fn a_progress_bar_only_while_more_than_1000_blocks_behind() {
        let status = ChainStatus::default();
        status.set_head(20_000);
        status.set_processed(12_000);
        let far = chain_section(&line(20_000, 12_000), &status, 10_000, &[]).into_string();
        assert!(far.contains(r#"<progress id="lag-1-progress" max="10000" value="2000">"#), "{far}");
        assert!(far.contains("8000 blocks behind"), "{far}");
        let near = chain_section(&line(20_000, 19_000), &status, 10_000, &[]).into_string();
        assert!(!near.contains("<progress"), "1,000 behind is not far: {near}");
    }
}
