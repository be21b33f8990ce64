//! HTTP routes of `activity.*`: the caller's own request log, readable with
//! `resources.read_account`.

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::ApiResult;
use crate::openapi::{ApiEnvelope, ErrorBody};
use crate::state::AppState;
use crate::wire::{ok, ApiQuery, Envelope};

use super::model::Activity;
use super::service::{self, ActivityStats, ListQuery};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/auth/activity", get(list))
        .route("/users/auth/activity/stats", get(stats))
}

/// `activity.list`: a page of records in `data`, paging in `metadata`.
#[utoipa::path(
    get, path = "/api/v1/users/auth/activity", tag = "activity", operation_id = "activity.list",
    params(ListQuery),
    responses(
        (status = 200, description = "Records newest first; `metadata` {total, page, limit, pages} sits beside `data`", body = ApiEnvelope<Vec<Activity>>),
        (status = 400, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::ReadAccount>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Envelope> {
    let (records, metadata) = service::list(&state, caller.user_id(), &q)?;
    Ok(ok("Activity", records).with("metadata", metadata))
}

/// `activity.getStats`.
#[utoipa::path(
    get, path = "/api/v1/users/auth/activity/stats", tag = "activity",
    operation_id = "activity.getStats",
    responses((status = 200, body = ApiEnvelope<ActivityStats>)),
    security(("bearer" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Authed<perm::ReadAccount>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Activity statistics",
        service::stats(&state, caller.user_id())?,
    ))
}

/// Deletes activity older than the retention setting; the server calls it
/// every minute.
pub fn prune(state: &AppState) {
    match service::prune_older_than(state, state.settings.activity_retention_days) {
        Ok(0) => {}
        Ok(n) => tracing::info!(chunks = n, "pruned activity records"),
        Err(e) => tracing::warn!(error = %e, "cannot prune activity"),
    }
}
