//! Goods specifications (seed 000), in the seed's envelope `{"code": 1, "message": "success",
//! "info": ...}`; errors use the same envelope with `code` 0 and a 4xx status. Writes need the
//! admin token; reads are public.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admin::Admin;
use super::error::ApiError;
use super::extract::{ApiQuery, parse_json};
use crate::catalog::goods::{GoodsError, display_prices, validate};
use crate::money::cents_text;
use crate::store::catalog::{self, GoodsSpecification, SpecCell, SpecPicture};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CellIn {
    pub main_specification: String,
    pub second_specification: String,
    /// A number (`23`) or a decimal string (`"23.50"`).
    pub purchasing_cost: Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PicIn {
    pub main_specification: String,
    pub image_url: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GoodsIn {
    pub goods_id: i64,
    pub main_specification_name: String,
    pub second_specification_name: String,
    pub specification: Vec<CellIn>,
    #[serde(default)]
    pub pics: Vec<PicIn>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GoodsQuery {
    pub goods_id: Option<i64>,
}

/// The seed's envelope as documented: `code` 1 with `info` on success, 0 with a message and
/// an empty `info` on failure.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CatalogEnvelope {
    pub code: i64,
    pub message: String,
    pub info: Value,
}

impl CatalogEnvelope {
    fn failure(status: StatusCode, message: String) -> Response {
        (status, Json(CatalogEnvelope { code: 0, message, info: json!("") })).into_response()
    }
}

/// The envelope for failures: `{"code": 0, "message"}` with the error's status.
fn envelope_error(e: ApiError) -> Response {
    let message = match &e {
        ApiError::Unauthorized => "missing or invalid admin token".to_string(),
        other => other.to_string(), // an internal error's text is generic; its cause is logged
    };
    let status = e.into_response().status();
    CatalogEnvelope::failure(status, message)
}

fn envelope_invalid(field: &str, problem: &str) -> Response {
    CatalogEnvelope::failure(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: {problem}"))
}

fn success(info: Value) -> Response {
    Json(CatalogEnvelope { code: 1, message: "success".into(), info }).into_response()
}

fn parse_cost(i: usize, v: &Value) -> Result<Decimal, GoodsError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => String::new(),
    };
    Decimal::from_str(&text).map_err(|_| GoodsError {
        field: format!("specification[{i}].purchasing_cost"),
        problem: "must be a decimal number".into(),
    })
}

fn to_goods(body: GoodsIn) -> Result<GoodsSpecification, GoodsError> {
    let cells = body
        .specification
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(SpecCell {
                main_specification: c.main_specification.clone(),
                second_specification: c.second_specification.clone(),
                purchasing_cost: parse_cost(i, &c.purchasing_cost)?,
            })
        })
        .collect::<Result<Vec<_>, GoodsError>>()?;
    let pics = body
        .pics
        .into_iter()
        .map(|p| SpecPicture { main_specification: p.main_specification, image_url: p.image_url })
        .collect();
    let goods = GoodsSpecification {
        goods_id: body.goods_id,
        main_specification_name: body.main_specification_name,
        second_specification_name: body.second_specification_name,
        cells,
        pics,
    };
    validate(&goods)?;
    Ok(goods)
}

/// Replaces (or creates) a goods item's specifications.
async fn save(state: &AppState, body: &[u8]) -> Response {
    let parsed: GoodsIn = match parse_json(body) {
        Ok(b) => b,
        Err(ApiError::Invalid { problem, .. }) => return envelope_invalid("body", &problem),
        Err(e) => return envelope_error(e),
    };
    let goods = match to_goods(parsed) {
        Ok(g) => g,
        Err(e) => return envelope_invalid(&e.field, &e.problem),
    };
    let result = async {
        let mut tx = state.store.begin().await?;
        catalog::replace_goods_specification(&mut tx, &goods).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(())
    }
    .await;
    match result {
        Ok(()) => success(json!("")),
        Err(e) => envelope_error(e.into()),
    }
}

/// `POST goods-specification/update-sp`.
#[utoipa::path(
    post, path = "/goods-specification/update-sp", tag = "catalog",
    summary = "Replace a goods item's specifications (admin)",
    request_body = GoodsIn,
    responses(
        (status = 200, description = "Saved", body = CatalogEnvelope),
        (status = 400, body = CatalogEnvelope), (status = 401, body = CatalogEnvelope),
        (status = 422, body = CatalogEnvelope), (status = 503, body = CatalogEnvelope)
    ),
    security(("admin_token" = []))
)]
pub async fn update_sp(
    State(state): State<AppState>,
    admin: Result<Admin, ApiError>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = admin {
        return envelope_error(e);
    }
    save(&state, &body).await
}

/// `POST goods-specifications`: with `?goods_id=` the detail (public); without, a create (admin).
#[utoipa::path(
    post, path = "/goods-specifications", tag = "catalog",
    summary = "With goods_id: a goods item's detail (public); without: create (admin)",
    params(GoodsQuery),
    request_body(content = Option<GoodsIn>, description = "Only to create"),
    responses(
        (status = 200, description = "Detail or saved", body = CatalogEnvelope),
        (status = 400, body = CatalogEnvelope), (status = 401, body = CatalogEnvelope),
        (status = 404, body = CatalogEnvelope), (status = 422, body = CatalogEnvelope),
        (status = 503, body = CatalogEnvelope)
    ),
    security((), ("admin_token" = []))
)]
pub async fn post_goods(
    State(state): State<AppState>,
    admin: Result<Admin, ApiError>,
    query: Result<ApiQuery<GoodsQuery>, ApiError>,
    body: axum::body::Bytes,
) -> Response {
    match query {
        Ok(ApiQuery(GoodsQuery { goods_id: Some(id) })) => detail(&state, id).await,
        Ok(_) => match admin {
            Ok(_) => save(&state, &body).await,
            Err(e) => envelope_error(e),
        },
        Err(_) => envelope_invalid("goods_id", "must be an integer"),
    }
}

/// `GET goods-specifications?goods_id=N`.
#[utoipa::path(
    get, path = "/goods-specifications", tag = "catalog",
    summary = "A goods item's specifications with display prices",
    params(GoodsQuery),
    responses(
        (status = 200, body = CatalogEnvelope),
        (status = 404, body = CatalogEnvelope), (status = 422, body = CatalogEnvelope),
        (status = 503, body = CatalogEnvelope)
    )
)]
pub async fn get_goods(State(state): State<AppState>, query: Result<ApiQuery<GoodsQuery>, ApiError>) -> Response {
    match query {
        Ok(ApiQuery(GoodsQuery { goods_id: Some(id) })) => detail(&state, id).await,
        _ => envelope_invalid("goods_id", "is required"),
    }
}

async fn detail(state: &AppState, goods_id: i64) -> Response {
    let found = async {
        let mut tx = state.store.begin_read().await?;
        let g = catalog::get_goods_specification(&mut tx, goods_id).await?;
        tx.rollback().await?;
        Ok::<_, crate::store::StoreError>(g)
    }
    .await;
    let goods = match found {
        Ok(Some(g)) => g,
        Ok(None) => {
            return CatalogEnvelope::failure(StatusCode::NOT_FOUND, "goods not found".into());
        }
        Err(e) => return envelope_error(e.into()),
    };
    let (markup, discount) = (state.config.catalog.markup.0, state.config.catalog.discount.0);
    let picture = |main: &str| goods.pics.iter().find(|p| p.main_specification == main).map(|p| p.image_url.clone());
    let cells: Vec<Value> = goods
        .cells
        .iter()
        .map(|c| {
            let (original, after) = display_prices(c.purchasing_cost, markup, discount);
            let mut cell = json!({
                "main_specification": c.main_specification,
                "second_specification": c.second_specification,
                "purchasing_cost": cents_text(c.purchasing_cost),
                "original_cost": cents_text(original),
                "after_discount_cost": cents_text(after),
            });
            if let Some(url) = picture(&c.main_specification) {
                cell["image_url"] = json!(url);
            }
            cell
        })
        .collect();
    let pics: Vec<Value> = goods
        .pics
        .iter()
        .map(|p| json!({"main_specification": p.main_specification, "image_url": p.image_url}))
        .collect();
    success(json!({
        "goods_id": goods.goods_id.to_string(),
        "main_specification_name": goods.main_specification_name,
        "second_specification_name": goods.second_specification_name,
        "specification": cells,
        "pics": pics,
    }))
}
