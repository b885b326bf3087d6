//! The payer's checkout page, `GET /pay/{order_id}`: amount, deposit address with a copy
//! button, a QR code of the EIP-681 URI, a countdown and live status. Server-rendered; the
//! script and style are served by paywatch itself (no CDN), so the page works offline. The
//! order id is the capability: the page needs no key, as a payment link would not.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use qrcode::QrCode;
use qrcode::render::svg;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;
use crate::payments::order_view::{self, OrderView};

const SCRIPT: &str = include_str!("checkout_assets/checkout.js");
const STYLE: &str = include_str!("checkout_assets/checkout.css");

#[utoipa::path(
    get, path = "/pay/assets/checkout.js", tag = "checkout",
    summary = "The checkout page's script",
    responses((status = 200, content_type = "text/javascript", body = String))
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(
    get, path = "/pay/assets/checkout.css", tag = "checkout",
    summary = "The checkout page's style sheet",
    responses((status = 200, content_type = "text/css", body = String))
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

#[utoipa::path(
    get, path = "/pay/{order_id}", tag = "checkout",
    summary = "The payer's checkout page (HTML)",
    params(("order_id" = String, Path)),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "No such order", content_type = "text/html", body = String),
        (status = 503, description = "A price, the database or the node is unavailable", body = ErrorBody)
    )
)]
pub async fn page(State(state): State<AppState>, ApiPath(order_id): ApiPath<String>) -> Result<Response, ApiError> {
    let heads = state.chains.heads_or_ask().await;
    let Some(view) = order_view::load(&state.store, &state.config, &heads, None, &order_id).await? else {
        let body = layout(
            "Order not found",
            "<p class=\"muted\">No order has this link. Check the address you were given.</p>",
        );
        return Ok((StatusCode::NOT_FOUND, Html(body)).into_response());
    };
    Ok(([(CONTENT_SECURITY_POLICY, csp())], Html(render(&view))).into_response())
}

/// Only paywatch's own script, style and pictures; the page talks to nothing but paywatch
/// (a browser wallet is an extension, outside the page's policy); it posts no form.
fn csp() -> String {
    super::page::Csp { scripts: true, images: true, connect: true, forms: false }.header_value()
}

fn render(view: &OrderView) -> String {
    let state_json = serde_json::to_string(view).expect("an order view serializes").replace("</", "<\\/");
    let closed = match view.status.as_str() {
        "paid" => Some(
            "<section class=\"deposit closed\"><p class=\"closed-note\">This order is paid. Nothing more to send.</p></section>",
        ),
        "expired" => Some(
            "<section class=\"deposit closed\"><p class=\"closed-note\">This order has expired: do not send money to its address. Create a new order.</p></section>",
        ),
        _ => None,
    };
    let payment = match (closed, &view.address) {
        (Some(note), _) => note.to_string(),
        (None, Some(address)) if !view.options.is_empty() => deposit(view, address),
        (None, Some(_)) => {
            "<section class=\"deposit\"><p class=\"muted\">This order's token is no longer offered here.</p></section>"
                .to_string()
        }
        (None, None) => format!(
            r#"<section class="deposit"><p class="amount"><span id="amount">{}</span> USD by card</p></section>"#,
            escape(&view.usd)
        ),
    };
    let body = format!(
        r#"<p class="muted small">Order <code id="order-id">{order_id}</code></p>
{payment}
<section class="status-box">
  <p id="status" data-status="{status}" role="status" aria-live="polite">…</p>
  <p id="detail" class="muted"></p>
  <p id="countdown" class="muted" data-expires-at="{expires_at}"></p>
</section>
<script id="order-state" type="application/json">{state_json}</script>
<script src="/pay/assets/checkout.js" defer></script>"#,
        order_id = escape(&view.order_id),
        status = escape(&view.status),
        expires_at = view.expires_at,
    );
    layout("Pay your order", &body)
}

/// The deposit box of an open order: a choice of network when several can pay it, the chosen
/// one's QR code (its wallet link), the amount in token units and the address, each with a
/// copy button, and a place for browser wallets (`checkout.js` fills and switches them). The
/// address is the same on every network, and the page says so.
fn deposit(view: &OrderView, address: &str) -> String {
    let chosen = view.options.iter().position(|o| Some(o.chain_id) == view.chain_id).unwrap_or(0);
    let mut choices = String::new();
    let mut codes = String::new();
    for (i, o) in view.options.iter().enumerate() {
        let checked = if i == chosen { " checked" } else { "" };
        choices.push_str(&format!(
            r#"<label class="network"><input type="radio" name="network" value="{id}"{checked}> {icon}{network} <span class="muted small">({symbol})</span></label>"#,
            id = o.chain_id,
            icon = icon(o.icon.as_deref()),
            network = escape(&o.network),
            symbol = escape(&o.symbol),
        ));
        let hidden = if i == chosen { "" } else { " hidden" };
        codes.push_str(&format!(
            r#"<div class="qr" data-chain-id="{id}" role="img" aria-label="QR code of the payment on {network}"{hidden}>{qr}</div>"#,
            id = o.chain_id,
            network = escape(&o.network),
            qr = qr_svg(&o.link),
        ));
    }
    let o = &view.options[chosen];
    let (networks, same_address) = match view.options.len() {
        1 => (String::new(), String::new()),
        _ => (
            format!(r#"<fieldset id="networks"><legend>Pay on</legend>{choices}</fieldset>"#),
            format!(
                r#"<p class="muted small" id="same-address">The same address on every network: pay on whichever holds your {}.</p>"#,
                escape(&o.symbol)
            ),
        ),
    };
    format!(
        r#"{networks}
<section class="deposit">
  {codes}
  <div class="fields">
    <label for="amount">Send exactly</label>
    <div class="copy-row amount-row"><p class="amount"><span id="amount">{amount}</span> <span id="unit">{symbol}</span></p>
      <button type="button" class="copy" data-copy-from="amount" aria-label="Copy the amount">Copy</button></div>
    <label for="address">to this address on <span id="network">{network}</span></label>
    <div class="copy-row"><code id="address">{address}</code>
      <button type="button" class="copy" data-copy-from="address" aria-label="Copy the address">Copy</button></div>
    {same_address}
    <p class="muted small">Only {symbol} on {network_again}: token contract <code id="token">{token}</code>. <a id="wallet-link" href="{link}">Open in a wallet app</a></p>
  </div>
</section>
<section class="wallet" id="wallet" hidden aria-labelledby="wallet-title">
  <h2 id="wallet-title">Pay with a browser wallet</h2>
  <div id="wallet-buttons"></div>
  <p id="wallet-message" role="alert"></p>
  <p id="wallet-tx" class="small"></p>
</section>"#,
        amount = escape(&o.value),
        symbol = escape(&o.symbol),
        network = escape(&o.network),
        network_again = escape(&o.network),
        address = escape(&checksummed(address)),
        token = escape(&checksummed(&o.token)),
        link = escape(&o.link),
    )
}

/// A network's picture beside its name (decorative: the name says it).
fn icon(src: Option<&str>) -> String {
    src.map(|src| format!(r#"<img class="icon" src="{}" alt="" width="20" height="20"> "#, escape(src)))
        .unwrap_or_default()
}

fn layout(title: &str, body: &str) -> String {
    let frame =
        super::page::Shell { site: "paywatch", stylesheet: "/pay/assets/checkout.css", script: None, header: None };
    super::page::shell(frame, title, maud::PreEscaped(body.to_string())).into_string()
}

/// EIP-55 mixed case, which wallets check when an address is pasted.
fn checksummed(address: &str) -> String {
    address.parse::<alloy::primitives::Address>().map_or_else(|_| address.to_string(), |a| a.to_checksum(None))
}

/// The EIP-681 URI as an inline SVG QR code (medium error correction, as wallets scan it).
fn qr_svg(uri: &str) -> String {
    match QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code.render::<svg::Color>().min_dimensions(220, 220).quiet_zone(true).build(),
        // A URI too long for a QR code cannot happen with addresses and amounts; say so anyway.
        Err(_) => "<p class=\"muted\">QR code unavailable; copy the address instead.</p>".to_string(),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let svg = qr_svg(
            "ethereum:0x0000000000000000000000000000000000000001@1/transfer?address=0x0000000000000000000000000000000000000002&uint256=1000000",
        );
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
}
