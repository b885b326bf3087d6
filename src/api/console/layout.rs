//! The console's page shell (navigation, sign-out) and the small pieces pages share.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::session::Operator;
use crate::api::error::ApiError;

const SECTIONS: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/orders", "Orders"),
    ("/console/webhooks", "Webhooks"),
    ("/console/sweeps", "Sweeps"),
    ("/console/teams", "Teams"),
    ("/console/funds", "Stray funds"),
];

/// A whole page; `current` is the navigation entry it belongs to.
pub fn page(operator: Option<&Operator>, current: &str, title: &str, body: Markup) -> Markup {
    let header = html! {
        header class="top" {
            span class="brand" { "paywatch" }
            @if let Some(op) = operator {
                nav aria-label="Console sections" {
                    ul {
                        @for (href, name) in SECTIONS {
                            li {
                                @if href == current {
                                    a href=(href) aria-current="page" { (name) }
                                } @else {
                                    a href=(href) { (name) }
                                }
                            }
                        }
                    }
                }
                form method="post" action="/console/sign-out" class="sign-out" {
                    (csrf_field(op))
                    button type="submit" { "Sign out" }
                }
            }
        }
    };
    let frame = crate::api::page::Shell {
        site: "paywatch console",
        stylesheet: "/console/assets/console.css",
        script: Some("/console/assets/console.js"),
        header: Some(header),
    };
    crate::api::page::shell(frame, title, body)
}

pub fn csrf_field(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

/// A one-button form posting to `action` (Redeliver, Revoke, Sweep now).
pub fn action_button(op: &Operator, action: &str, label: &str, back: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf_field(op))
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

/// Unix seconds as "2026-12-02 01:30:00 UTC".
pub fn when(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| ts.to_string())
}

/// An error as a console page, with the API's status for it (internal causes are logged).
pub fn error_page(operator: Option<&Operator>, e: ApiError) -> Response {
    let (status, _) = e.status_and_code();
    if let ApiError::Internal(cause) = &e {
        tracing::error!(error = format!("{cause:#}"), "console request failed");
    }
    let body =
        html! { p class="error" role="alert" { (e.to_string()) } p { a href="/console" { "Back to the overview" } } };
    (status, page(operator, "", "Something went wrong", body)).into_response()
}

/// A short notice page (an action's outcome) with a link on.
pub fn notice(operator: &Operator, current: &str, title: &str, body: Markup) -> Response {
    (StatusCode::OK, page(Some(operator), current, title, body)).into_response()
}
