//! Webhook deliveries that failed or are still pending, with their last error (URLs hidden)
//! and a Redeliver button; the table is shared with the order detail.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{action_button, error_page, when};
use super::{Back, Operator, Posted, back_to};
use crate::api::AppState;
use crate::api::admin::{endpoint_disabled, queue_again};
use crate::store::outbox::{self, Delivery};

/// An error text with every URL replaced: the receiver's address (and any secret in it) stays
/// out of the console.
pub fn hide_urls(text: &str) -> String {
    text.split(' ').map(|w| if w.contains("://") { "[url hidden]" } else { w }).collect::<Vec<_>>().join(" ")
}

pub fn table(op: &Operator, id: &str, deliveries: &[Delivery], back: &str) -> Markup {
    html! {
        @if deliveries.is_empty() { p { "No webhook events." } } @else {
            div class="scroll" { table id=(id) {
                caption { "Webhook events, newest first" }
                thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "State" }
                    th scope="col" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Created" } th scope="col" { "Action" } } }
                tbody { @for d in deliveries {
                    tr data-event-id=(d.event_id) data-state=(d.state) {
                        td { code { (d.event_id) } } td { (d.event_type) } td { (d.state) } td { (d.attempts) }
                        td { @if let Some(e) = &d.last_error { (hide_urls(e)) } }
                        td { (when(d.created_at)) }
                        td { (action_button(op, &format!("/console/webhooks/{}/redeliver", d.event_id), "Redeliver", back)) }
                    }
                } }
            } }
        }
    }
}

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let lists = async {
        let db = state.store.pool();
        Ok::<_, crate::store::StoreError>((
            outbox::list(db, outbox::Which::Undelivered, 200).await?,
            outbox::list(db, outbox::Which::All, 50).await?,
        ))
    }
    .await;
    let disabled = endpoint_disabled(&state).await;
    match (lists, disabled) {
        (Ok((undelivered, recent)), Ok(disabled)) => {
            let body = html! {
                @if let Some(off) = disabled {
                    section id="endpoint-disabled" class="alert" role="alert" aria-labelledby="endpoint-h" {
                        h2 id="endpoint-h" { "Endpoint disabled" }
                        p { "Nothing is sent since " (when(off.disabled_at)) ": " (off.reason)
                            ". Events wait in order and go out once it is re-enabled." }
                        (action_button(&op, "/console/webhooks/enable", "Re-enable the endpoint", "/console/webhooks"))
                    }
                }
                section aria-labelledby="undelivered-h" {
                    h2 id="undelivered-h" { "Failed and pending" }
                    (table(&op, "undelivered", &undelivered, "/console/webhooks"))
                }
                section aria-labelledby="recent-h" {
                    h2 id="recent-h" { "Recent events" }
                    (table(&op, "recent", &recent, "/console/webhooks"))
                }
            };
            super::layout::page(Some(&op), "/console/webhooks", "Webhooks", body).into_response()
        }
        (Err(e), _) => error_page(Some(&op), e.into()),
        (_, Err(e)) => error_page(Some(&op), e),
    }
}

pub async fn enable(State(state): State<AppState>, posted: Posted<Back>) -> Response {
    match crate::api::admin::enable(&state).await {
        Ok(_) => back_to(posted.form.back.as_deref()),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}

pub async fn redeliver(State(state): State<AppState>, Path(event_id): Path<String>, posted: Posted<Back>) -> Response {
    match queue_again(&state, &event_id).await {
        Ok(()) => back_to(posted.form.back.as_deref()),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_hidden_from_errors() {
        assert_eq!(
            super::hide_urls("error sending request for url (https://hooks.example/secret?k=1): refused"),
            "error sending request for url [url hidden] refused"
        );
    }
}
