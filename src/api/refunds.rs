//! Refund claims over HTTP: the operator's `/admin` routes (create from a stray fund, list,
//! approve, record an external signer's transaction) and the payer's claim link
//! `/refund/{refund_id}` (the id is the capability): a page with a form, and its JSON twin.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::admin::Admin;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::money::format_base_units;
use crate::payments::LedgerError;
use crate::payments::refunds as rules;
use crate::store::refunds::{self, Refund};

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(what) => ApiError::NotFound(what),
            LedgerError::Conflict(why) => ApiError::Conflict(why),
            LedgerError::Invalid { field, problem } => ApiError::invalid(field, problem),
            LedgerError::Limit(why) => ApiError::invalid("limit", why),
            LedgerError::Price(why) | LedgerError::Unavailable(why) => ApiError::Unavailable(why),
            LedgerError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundDetail {
    pub refund: Refund,
    /// The link to give the payer: they open it and say where to send the refund.
    pub claim_url: String,
    /// Without a refund key, once approved: the transaction for an external signer (a Safe).
    pub prepared_transaction: Option<serde_json::Value>,
}

fn detail(state: &AppState, refund: Refund) -> RefundDetail {
    let external = state.config.refunds.private_key.is_none() && refund.status == "approved";
    RefundDetail {
        claim_url: format!("/refund/{}", refund.refund_id),
        prepared_transaction: external.then(|| rules::prepared(&refund)).flatten(),
        refund,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewRefundBody {
    /// In token units ("1.5"); the whole fund when absent.
    pub amount: Option<String>,
}

#[utoipa::path(
    post, path = "/admin/funds/{fund_id}/refunds", operation_id = "create_refund", tag = "admin",
    summary = "Refund a stray fund (all or part, in its token): answers the claim link for the payer",
    params(("fund_id" = String, Path)), request_body = NewRefundBody,
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(fund_id): ApiPath<String>,
    ApiJson(body): ApiJson<NewRefundBody>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let refund = rules::create(&state.store, &state.config, &state.prices, &fund_id, body.amount.as_deref()).await?;
    Ok(axum::Json(detail(&state, refund)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundsQuery {
    /// open, claimed, approved, sent, refunded or failed.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundList {
    pub refunds: Vec<Refund>,
}

#[utoipa::path(
    get, path = "/admin/refunds", operation_id = "list_refunds", tag = "admin",
    summary = "Refunds, newest first",
    params(RefundsQuery),
    responses((status = 200, body = RefundList), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<RefundsQuery>,
) -> Result<axum::Json<RefundList>, ApiError> {
    let known = ["open", "claimed", "approved", "sent", "refunded", "failed"];
    if let Some(s) = q.status.as_deref().filter(|s| !known.contains(s)) {
        return Err(ApiError::invalid("status", format!("{s:?} is none of {}", known.join(", "))));
    }
    Ok(axum::Json(RefundList { refunds: refunds::list(state.store.pool(), q.status.as_deref(), 1000).await? }))
}

#[utoipa::path(
    get, path = "/admin/refunds/{refund_id}", operation_id = "get_refund", tag = "admin",
    summary = "One refund, with the transaction to sign when no refund key is configured",
    params(("refund_id" = String, Path)),
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(refund_id): ApiPath<String>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let refund = refunds::get(state.store.pool(), &refund_id).await?.ok_or(ApiError::NotFound("refund"))?;
    Ok(axum::Json(detail(&state, refund)))
}

#[utoipa::path(
    post, path = "/admin/refunds/{refund_id}/approve", operation_id = "approve_refund", tag = "admin",
    summary = "Approve a claimed refund (within [refunds] max_per_day_usd); it is then sent",
    params(("refund_id" = String, Path)),
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(refund_id): ApiPath<String>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let refund = rules::approve(&state.store, &state.config, &refund_id).await?;
    Ok(axum::Json(detail(&state, refund)))
}

#[utoipa::path(
    post, path = "/admin/refunds/{refund_id}/cancel", operation_id = "cancel_refund", tag = "admin",
    summary = "Cancel a refund not sent yet (open, claimed or approved): it fails and its fund is open again",
    params(("refund_id" = String, Path)),
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(refund_id): ApiPath<String>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let refund = rules::end_unsent(&state.store, &refund_id, "cancelled by the operator").await?;
    Ok(axum::Json(detail(&state, refund)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RejectBody {
    /// Why the claim is refused (shown with the refund, and to the payer on its link).
    pub reason: String,
}

#[utoipa::path(
    post, path = "/admin/refunds/{refund_id}/reject", operation_id = "reject_refund", tag = "admin",
    summary = "Refuse a claim (an address the operator will not pay, say): the refund fails and its fund is open again",
    params(("refund_id" = String, Path)), request_body = RejectBody,
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(refund_id): ApiPath<String>,
    ApiJson(body): ApiJson<RejectBody>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::invalid("reason", "must be 1 to 500 characters"));
    }
    let refund = rules::end_unsent(&state.store, &refund_id, &format!("rejected by the operator: {reason}")).await?;
    Ok(axum::Json(detail(&state, refund)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SentBody {
    /// The transaction the external signer sent (0x + 64 hex digits).
    pub tx_hash: String,
}

#[utoipa::path(
    post, path = "/admin/refunds/{refund_id}/sent", operation_id = "refund_sent", tag = "admin",
    summary = "Record the transaction an external signer sent for an approved refund (no refund key configured)",
    params(("refund_id" = String, Path)), request_body = SentBody,
    responses((status = 200, body = RefundDetail), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn sent(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(refund_id): ApiPath<String>,
    ApiJson(body): ApiJson<SentBody>,
) -> Result<axum::Json<RefundDetail>, ApiError> {
    let refund = rules::record_external(&state.store, &state.config, &refund_id, &body.tx_hash).await?;
    Ok(axum::Json(detail(&state, refund)))
}

/// What the payer sees of a refund.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicRefund {
    pub refund_id: String,
    pub status: String,
    /// In token units.
    pub amount: String,
    pub symbol: String,
    pub network: String,
    pub chain_id: i64,
    pub to_address: Option<String>,
    pub tx_hash: Option<String>,
    /// The transaction on the chain's explorer, once sent.
    pub tx_url: Option<String>,
}

fn public(state: &AppState, r: &Refund) -> PublicRefund {
    let entry = r.token.parse().ok().and_then(|a| state.config.token_book().at(r.chain_id as u64, a).cloned());
    let chain = state.config.chain_by_id(r.chain_id as u64);
    let network = chain.as_ref().map(|c| c.config.display_name.clone().unwrap_or_else(|| c.name.to_string()));
    let explorer = chain.as_ref().and_then(|c| c.config.explorer.clone());
    PublicRefund {
        refund_id: r.refund_id.clone(),
        status: r.status.clone(),
        amount: entry
            .as_ref()
            .and_then(|e| r.amount_base.parse().ok().map(|u| format_base_units(u, e.decimals)))
            .unwrap_or_else(|| r.amount_base.clone()),
        symbol: entry.map(|e| e.asset).unwrap_or_default(),
        network: network.unwrap_or_else(|| format!("chain {}", r.chain_id)),
        chain_id: r.chain_id,
        to_address: r.to_address.clone(),
        tx_url: explorer.zip(r.tx_hash.clone()).map(|(x, h)| format!("{}/tx/{h}", x.trim_end_matches('/'))),
        tx_hash: r.tx_hash.clone(),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ClaimBody {
    /// Where to send the refund: your own wallet on the refund's network.
    pub address: String,
    /// True: the payer checked the address and network.
    pub confirm: bool,
}

#[utoipa::path(
    post, path = "/refund/{refund_id}", operation_id = "claim_refund", tag = "checkout",
    summary = "Claim a refund: the address to receive it (the link's id is the capability)",
    params(("refund_id" = String, Path)), request_body = ClaimBody,
    responses((status = 200, body = PublicRefund), super::error::responses::Public)
)]
pub async fn claim_json(
    State(state): State<AppState>,
    ApiPath(refund_id): ApiPath<String>,
    ApiJson(body): ApiJson<ClaimBody>,
) -> Result<axum::Json<PublicRefund>, ApiError> {
    if !body.confirm {
        return Err(ApiError::invalid("confirm", "must be true: check the address and network first"));
    }
    let refund = rules::claim(&state.store, &state.config, &refund_id, &body.address).await?;
    Ok(axum::Json(public(&state, &refund)))
}

/// The claim page: its style sheet and its own form, nothing else.
fn csp() -> String {
    super::page::Csp { forms: true, ..Default::default() }.header_value()
}

#[utoipa::path(
    get, path = "/refund/{refund_id}", operation_id = "refund_page", tag = "checkout",
    summary = "The payer's refund claim page (HTML): amount, token, network, and a form for the address",
    params(("refund_id" = String, Path)),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "No such refund", content_type = "text/html", body = String)
    )
)]
pub async fn page(State(state): State<AppState>, ApiPath(refund_id): ApiPath<String>) -> Result<Response, ApiError> {
    render(&state, &refund_id, None, StatusCode::OK).await
}

async fn render(
    state: &AppState,
    refund_id: &str,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let Some(refund) = refunds::get(state.store.pool(), refund_id).await? else {
        let body =
            layout("Refund not found", html! { p { "No refund has this link. Check the address you were given." } });
        return Ok(
            (StatusCode::NOT_FOUND, [(CONTENT_SECURITY_POLICY, csp())], Html(body.into_string())).into_response()
        );
    };
    let p = public(state, &refund);
    let body = html! {
        p class="amount" { "Refund of " strong id="refund-amount" { (p.amount) " " (p.symbol) } " on " strong id="refund-network" { (p.network) } "." }
        @if let Some(problem) = &problem { p id="refund-problem" role="alert" class="error" { (problem) } }
        @match p.status.as_str() {
            "open" => {
                form method="post" action=(format!("/refund/{}/claim", p.refund_id)) class="claim" {
                    label for="address" { "Your wallet address on " (p.network) }
                    input id="address" name="address" type="text" required autocomplete="off" spellcheck="false"
                        pattern="0x[0-9a-fA-F]{40}" placeholder="0x…";
                    p class="muted" { "Not an exchange deposit address: it may not credit a transfer from us. Not the address you paid to." }
                    label class="confirm" { input id="confirm" name="confirm" type="checkbox" value="yes" required;
                        " I checked this address: it is my own wallet, on " (p.network) "." }
                    button type="submit" { "Claim the refund" }
                }
            }
            status => {
                p id="refund-status" { (match status {
                    "claimed" => "Claimed: waiting for the merchant's approval.",
                    "approved" => "Approved: being sent.",
                    "sent" => "Sent: waiting for confirmations.",
                    "refunded" => "Refunded.",
                    _ => "This refund could not be sent; the merchant has been told.",
                }) }
                @if let Some(to) = &p.to_address { p { "To " code { (to) } } }
                @if let Some(hash) = &p.tx_hash {
                    p { "Transaction " @if let Some(url) = &p.tx_url { a href=(url) rel="noopener" { code { (hash) } } } @else { code { (hash) } } }
                }
            }
        }
    };
    Ok((status, [(CONTENT_SECURITY_POLICY, csp())], Html(layout("Your refund", body).into_string())).into_response())
}

fn layout(title: &str, body: Markup) -> Markup {
    let frame =
        super::page::Shell { site: "paywatch", stylesheet: "/pay/assets/checkout.css", script: None, header: None };
    super::page::shell(frame, title, body)
}

#[derive(Debug, Deserialize)]
pub struct ClaimForm {
    address: String,
    confirm: Option<String>,
}

/// The page's form: a claim, then the page again (303), or the page with the problem (422).
async fn claim_form(
    State(state): State<AppState>,
    axum::extract::Path(refund_id): axum::extract::Path<String>,
    Form(form): Form<ClaimForm>,
) -> Result<Response, ApiError> {
    if form.confirm.is_none() {
        let why = "Tick the box once you checked the address and network.".to_string();
        return render(&state, &refund_id, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    match rules::claim(&state.store, &state.config, &refund_id, &form.address).await {
        Ok(_) => Ok(Redirect::to(&format!("/refund/{refund_id}")).into_response()),
        Err(LedgerError::Invalid { problem, .. }) => {
            render(&state, &refund_id, Some(format!("That address {problem}.")), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(LedgerError::Conflict(why)) => render(&state, &refund_id, Some(why), StatusCode::CONFLICT).await,
        Err(e) => Err(e.into()),
    }
}

/// The claim page's form route (HTML, outside the OpenAPI document like the console).
pub fn form_routes() -> axum::Router<AppState> {
    axum::Router::new().route("/refund/{refund_id}/claim", post(claim_form))
}
