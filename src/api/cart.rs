//! The hosting catalog (seed 002): `GET /v1/productsconfig` and `POST /v1/cart/price` are
//! public reads; `POST /v1/cart/order` (team key) reserves stock and opens an order paid like
//! an app's: by card at once or by token through its own deposit address. Admin writes save
//! first groups, groups, products and whole catalogs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::admin::Admin;
use super::cards::{pay_by_card, required_card};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Team, parse_json};
use super::idempotency::{Made, Once, run_once};
use super::types::pay_method as parse_pay_method;
use crate::catalog::cart::{self, PricedSelection, Selection};
use crate::catalog::config_view::{self, Currency};
use crate::catalog::import::{self, ProductPart, SaveError};
use crate::catalog::products::{
    CatalogDocument, CatalogError, ConfigOption, CustomField, Cycle, FirstGroup, Group, Product,
};
use crate::payments::checkout::{self, OrderFor};
use crate::payments::order_view::{self, OrderView};
use crate::store::card_charges::Purpose;
use crate::store::orders::OrderKind;
use crate::store::products::{self, Scope};

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        ApiError::invalid(e.field, e.problem)
    }
}

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Invalid(e) => e.into(),
            SaveError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    pub first_group_id: Option<i64>,
    pub group_id: Option<i64>,
    pub product_id: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/productsconfig", tag = "catalog",
    summary = "The hosting catalog in seed 002's shape, for exactly one of first_group_id, group_id, product_id",
    params(ConfigQuery),
    responses(
        (status = 200, description = "currency and first_group → group → products", body = Object),
        super::error::responses::Public
    )
)]
pub async fn products_config(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<Json<Value>, ApiError> {
    let scope = match (q.first_group_id, q.group_id, q.product_id) {
        (Some(id), None, None) => Scope::FirstGroup(id),
        (None, Some(id), None) => Scope::Group(id),
        (None, None, Some(id)) => Scope::Product(id),
        _ => return Err(ApiError::invalid("query", "give exactly one of first_group_id, group_id, product_id")),
    };
    let mut tx = state.store.begin_read().await?;
    let (first_groups, groups, products) = products::load(&mut tx, scope).await?;
    tx.rollback().await.map_err(crate::store::StoreError::from)?;
    let found = match scope {
        Scope::FirstGroup(_) => !first_groups.is_empty(),
        Scope::Group(_) => !groups.is_empty(),
        Scope::Product(_) => !products.is_empty(),
    };
    if !found {
        return Err(ApiError::NotFound("catalog entry"));
    }
    let currency = Currency::of(&state.config.catalog.currency);
    Ok(Json(config_view::render(&currency, &first_groups, &groups, &products)))
}

#[utoipa::path(
    post, path = "/v1/cart/price", tag = "catalog",
    summary = "Price a selection: line items per unit, then the total for the quantity",
    request_body = Selection,
    responses(
        (status = 200, body = PricedSelection),
        super::error::responses::Public
    )
)]
pub async fn cart_price(
    State(state): State<AppState>,
    ApiJson(selection): ApiJson<Selection>,
) -> Result<Json<PricedSelection>, ApiError> {
    let product =
        products::get_product(state.store.pool(), selection.product_id).await?.ok_or(ApiError::NotFound("product"))?;
    Ok(Json(cart::price(&product, product.qty, &selection)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CartOrderRequest {
    #[serde(flatten)]
    pub selection: Selection,
    /// CREDIT_CARD or a configured pay method (ANKR_ERC20, USDT_ERC20, ...).
    pub pay_method: String,
    /// For CREDIT_CARD.
    #[serde(default)]
    pub card_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartOrderResponse {
    pub order: OrderView,
    /// The selection as priced when ordered (kept with the order's reservation).
    #[schema(value_type = PricedSelection)]
    pub price: Value,
}

#[utoipa::path(
    post, path = "/v1/cart/order", tag = "catalog",
    summary = "Order a selection: stock reserved atomically, paid by card at once or by token",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer")),
    request_body = CartOrderRequest,
    responses((status = 200, body = CartOrderResponse), super::error::responses::TeamPayment),
    security(("team_key" = []))
)]
pub async fn cart_order(State(state): State<AppState>, team: Team, headers: HeaderMap, body: Bytes) -> Response {
    let (state, team, body) = (&state, &team, &body);
    run_once(state, team, &headers, "cart_order", body, move |once| async move {
        let req: CartOrderRequest = parse_json(body)?;
        cart_order_once(state, &once, team, req).await
    })
    .await
}

async fn cart_order_once(
    state: &AppState,
    once: &Once,
    team: &Team,
    req: CartOrderRequest,
) -> Result<CartOrderResponse, ApiError> {
    if let Some(made) = once.done::<Made>() {
        return cart_answer(state, team, &made.order_id).await;
    }
    let pay_method = parse_pay_method(&state.config, "pay_method", &req.pay_method)?;
    let product = products::get_product(state.store.pool(), req.selection.product_id)
        .await?
        .ok_or(ApiError::NotFound("product"))?;
    // Stock is judged by the atomic reservation (409), not by this earlier read.
    let priced = cart::price(&product, i64::MAX, &req.selection)?;
    let quote = checkout::price_usd_in(&state.config, &state.prices, pay_method, priced.total_exact).await?;
    checkout::ensure_payable(&quote)?;
    let selection = serde_json::to_string(&priced).map_err(|e| ApiError::Internal(e.into()))?;
    let out_of_stock = || ApiError::Conflict(format!("{} is out of stock", product.name));
    let order_id = match pay_method.token() {
        Some(token) => {
            // Stock, order and reservation in one transaction: all three or none.
            let mut tx = state.store.begin().await?;
            if !products::reserve(&mut *tx, product.id, priced.qty).await? {
                return Err(out_of_stock());
            }
            let what = OrderFor { team_id: &team.team_id, app_id: None, kind: OrderKind::Catalog, period_months: 0 };
            let order =
                checkout::open_token_order(&mut tx, &state.config, what, token, quote, |id| state.chains.now_on(id))
                    .await?;
            products::record_reservation(&mut tx, &order.order_id, product.id, priced.qty, &selection).await?;
            once.save_done(&mut tx, &Made { app_id: None, order_id: order.order_id.clone() }).await?;
            tx.commit().await.map_err(crate::store::StoreError::from)?;
            order.order_id
        }
        None => {
            // The card intent holds the stock until the charge is recorded or given up.
            let card_id = required_card("card_id", req.card_id.as_deref())?;
            let purpose = Purpose::Catalog { product_id: product.id, qty: priced.qty, selection };
            pay_by_card(state, once, team, &card_id, quote.usd, purpose).await?.order_id
        }
    };
    cart_answer(state, team, &order_id).await
}

/// The answer for a cart order: its view and the selection as priced when ordered.
async fn cart_answer(state: &AppState, team: &Team, order_id: &str) -> Result<CartOrderResponse, ApiError> {
    let heads = state.chains.heads_or_ask().await;
    let view = order_view::load(&state.store, &state.config, &heads, Some(&team.team_id), order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("order {order_id} vanished")))?;
    let price = products::reservation_selection(state.store.pool(), order_id)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    Ok(CartOrderResponse { order: view, price })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Saved {
    pub saved: String,
    pub id: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub first_groups: usize,
    pub groups: usize,
    pub products: usize,
}

#[utoipa::path(
    post, path = "/admin/catalog/first_groups", tag = "admin",
    summary = "Create or replace a first group (by id)",
    request_body = FirstGroup,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_first_group(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(g): ApiJson<FirstGroup>,
) -> Result<Json<Saved>, ApiError> {
    import::save_first_group(&state.store, &g).await?;
    Ok(Json(Saved { saved: "first_group".into(), id: g.id }))
}

#[utoipa::path(
    post, path = "/admin/catalog/groups", tag = "admin",
    summary = "Create or replace a group (by id) under a first group",
    request_body = Group,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_group(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(g): ApiJson<Group>,
) -> Result<Json<Saved>, ApiError> {
    import::save_group(&state.store, &g).await?;
    Ok(Json(Saved { saved: "group".into(), id: g.id }))
}

#[utoipa::path(
    post, path = "/admin/catalog/products", tag = "admin",
    summary = "Create or replace a product (by id) with its cycles, options, tiers and custom fields; qty sets the stock",
    request_body = Product,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_product(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(p): ApiJson<Product>,
) -> Result<Json<Saved>, ApiError> {
    import::save_product(&state.store, &p).await?;
    Ok(Json(Saved { saved: "product".into(), id: p.id }))
}

#[utoipa::path(
    post, path = "/admin/catalog/import", tag = "admin",
    summary = "Load a whole catalog in one transaction (as `paywatch catalog import`)",
    request_body = CatalogDocument,
    responses((status = 200, body = Imported), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn import_catalog(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(doc): ApiJson<CatalogDocument>,
) -> Result<Json<Imported>, ApiError> {
    let (first_groups, groups, products) = import::import(&state.store, &doc).await?;
    Ok(Json(Imported { first_groups, groups, products }))
}

async fn save_part(state: &AppState, product_id: i64, part: ProductPart, what: &str) -> Result<Json<Saved>, ApiError> {
    import::save_product_part(&state.store, product_id, part).await?.ok_or(ApiError::NotFound("product"))?;
    Ok(Json(Saved { saved: what.into(), id: product_id }))
}

#[utoipa::path(
    post, path = "/admin/catalog/products/{product_id}/cycles", tag = "admin",
    summary = "Add a billing cycle to a product, or replace the one with the same billingcycle",
    params(("product_id" = i64, Path)),
    request_body = Cycle,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_cycle(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(product_id): ApiPath<i64>,
    ApiJson(c): ApiJson<Cycle>,
) -> Result<Json<Saved>, ApiError> {
    save_part(&state, product_id, ProductPart::Cycle(c), "cycle").await
}

#[utoipa::path(
    post, path = "/admin/catalog/products/{product_id}/configoptions", tag = "admin",
    summary = "Add an option (with its sub-options and tiers) to a product, or replace the one with the same id",
    params(("product_id" = i64, Path)),
    request_body = ConfigOption,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_option(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(product_id): ApiPath<i64>,
    ApiJson(o): ApiJson<ConfigOption>,
) -> Result<Json<Saved>, ApiError> {
    save_part(&state, product_id, ProductPart::Option(o), "configoption").await
}

#[utoipa::path(
    post, path = "/admin/catalog/products/{product_id}/custom_fields", tag = "admin",
    summary = "Add a custom field to a product, or replace the one with the same id",
    params(("product_id" = i64, Path)),
    request_body = CustomField,
    responses((status = 200, body = Saved), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn save_field(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(product_id): ApiPath<i64>,
    ApiJson(f): ApiJson<CustomField>,
) -> Result<Json<Saved>, ApiError> {
    save_part(&state, product_id, ProductPart::Field(f), "custom_field").await
}
