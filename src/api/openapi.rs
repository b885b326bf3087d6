//! The OpenAPI document and its offline docs page. Every route is registered through
//! utoipa-axum's `routes!`, so the router and the document come from the same annotations:
//! a route cannot exist undocumented.

use std::sync::OnceLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paywatch",
        description = "Quotes, orders, deposit addresses and live payment status for ERC20 (ANKR, USDT) and card \
                       payments. JSON errors are `{\"code\", \"message\"}`; money is carried as decimal strings.",
        license(name = "MIT")
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&KeySchemes),
    tags(
        (name = "payments", description = "Quotes, token orders and their status"),
        (name = "apps", description = "Prepaid app deployments and their extensions"),
        (name = "lists", description = "Deposits and payments of a team"),
        (name = "checkout", description = "The payer's page and its live status (no key: the order id is the capability)"),
        (name = "catalog", description = "Goods specifications (seed 000 envelope)"),
        (name = "admin", description = "Operator endpoints behind the admin token"),
        (name = "operations", description = "Health, readiness, metrics and this document")
    )
)]
pub struct ApiDoc;

struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        components.add_security_scheme("team_key", bearer("A team's API key: `Authorization: Bearer <key>`"));
        components.add_security_scheme("admin_token", bearer("The operator's [auth] admin_token"));
    }
}

/// The document as JSON, built once from the router's annotations.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| super::api_routes().split_for_parts().1.to_pretty_json().expect("the document serializes"))
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
pub async fn openapi_json() -> Response {
    ([(CONTENT_TYPE, "application/json")], document_json()).into_response()
}

const DOCS_PAGE: &str = include_str!("docs_assets/docs.html");
const DOCS_SCRIPT: &str = include_str!("docs_assets/docs.js");

#[utoipa::path(
    get, path = "/docs", tag = "operations",
    summary = "Human-readable API reference, rendered from /openapi.json (works offline)",
    responses((status = 200, content_type = "text/html", body = String))
)]
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

#[utoipa::path(
    get, path = "/docs/docs.js", tag = "operations",
    summary = "The docs page's script",
    responses((status = 200, content_type = "text/javascript", body = String))
)]
pub async fn docs_script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "public, max-age=300")], DOCS_SCRIPT)
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_answers_reference_the_error_model() {
        let doc: serde_json::Value = serde_json::from_str(super::document_json()).unwrap();
        let app = &doc["paths"]["/v2alpha/teams/{team_id}/apps/{app_id}"]["get"]["responses"];
        assert_eq!(
            app["401"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
            "{app}"
        );
        assert_eq!(app["401"]["description"], "Missing or invalid key");
        assert!(app["200"].is_object());
        // Each kind of route documents its own errors: an admin route no price trouble.
        let admin = &doc["paths"]["/admin/teams"]["post"]["responses"];
        let unavailable = admin["503"]["description"].as_str().unwrap();
        assert!(!unavailable.contains("price"), "{unavailable}");
        let card = &doc["paths"]["/v2alpha/app/v2/app"]["post"]["responses"];
        assert!(card["402"].is_object() && card["408"].is_object(), "{card}");
    }
}
