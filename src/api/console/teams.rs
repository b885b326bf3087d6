//! Teams and their keys: create a team (its first key shown once), issue another key (shown
//! once), revoke a key. The same rules as the admin API (`api::admin`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{action_button, csrf_field, error_page, notice, when};
use super::{Back, Operator, Posted, back_to};
use crate::api::AppState;
use crate::api::admin::{IssuedKeyView, another_key, new_team, revoke};
use crate::store::teams;

pub async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let list = match teams::list_with_keys(state.store.pool()).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&op), e.into()),
    };
    let body = html! {
        section aria-labelledby="new-h" {
            h2 id="new-h" { "New team" }
            form method="post" action="/console/teams" class="inline-form" {
                (csrf_field(&op))
                label for="team-name" { "Name" }
                input type="text" id="team-name" name="name" required maxlength=(teams::MAX_NAME_CHARS);
                button type="submit" { "Create team" }
            }
        }
        section aria-labelledby="teams-h" {
            h2 id="teams-h" { "Teams" }
            @if list.is_empty() { p { "No team yet." } }
            @for (team, keys) in &list {
                article class="team" data-team-id=(team.team_id) aria-labelledby={"team-" (team.team_id)} {
                    h3 id={"team-" (team.team_id)} { (team.name) }
                    p { "Team id " code { (team.team_id) } ", created " (when(team.created_at)) }
                    (action_button(&op, &format!("/console/teams/{}/keys", team.team_id), "Issue a key", "/console/teams"))
                    div class="scroll" { table {
                        caption { "Keys of " (team.name) }
                        thead { tr { th scope="col" { "Key id" } th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { "Action" } } }
                        tbody { @for k in keys { tr data-key-id=(k.key_id) {
                            td { code { (k.key_id) } } td { (when(k.created_at)) }
                            @if let Some(r) = k.revoked_at { td { "revoked " (when(r)) } td {} } @else {
                                td { "live" }
                                td { (action_button(&op, &format!("/console/teams/{}/keys/{}/revoke", team.team_id, k.key_id), "Revoke", "/console/teams")) }
                            }
                        } } }
                    } }
                }
            }
        }
    };
    super::layout::page(Some(&op), "/console/teams", "Teams", body).into_response()
}

/// The one time a key's secret is shown.
fn shown_once(op: &Operator, title: &str, issued: &IssuedKeyView) -> Response {
    notice(
        op,
        "/console/teams",
        title,
        html! {
            p { "Copy the key now: it is shown this once (only its hash is stored)." }
            dl class="facts" {
                dt { "Team id" } dd { code id="issued-team" { (issued.team_id) } }
                dt { "Key id" } dd { code id="issued-key-id" { (issued.key_id) } }
                dt { "API key" } dd { code id="issued-key" { (issued.api_key) } }
            }
            p { a href="/console/teams" { "Back to teams" } }
        },
    )
}

#[derive(Deserialize)]
pub struct NewTeam {
    #[serde(default)]
    name: String,
}

pub async fn create(State(state): State<AppState>, posted: Posted<NewTeam>) -> Response {
    match new_team(&state, &posted.form.name).await {
        Ok(issued) => shown_once(&posted.operator, "Team created", &issued),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}

pub async fn issue_key(State(state): State<AppState>, Path(team_id): Path<String>, posted: Posted<Back>) -> Response {
    match another_key(&state, &team_id).await {
        Ok(issued) => shown_once(&posted.operator, "Key issued", &issued),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Path((team_id, key_id)): Path<(String, String)>,
    posted: Posted<Back>,
) -> Response {
    match revoke(&state, &team_id, &key_id).await {
        Ok(()) => back_to(posted.form.back.as_deref()),
        Err(e) => error_page(Some(&posted.operator), e),
    }
}
