//! HTTP routes of `events.*`. Every route needs `resources.events`, and a
//! token created with `event_access: false` is refused whatever its tree.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::ApiResult;
use crate::openapi::{ApiEnvelope, ErrorBody};
use crate::state::AppState;
use crate::wire::{ok, ApiJson, ApiQuery, Envelope};

use super::model::Event;
use super::service::{
    self, require_event_access, BulkDeleteRequest, CleanupRequest, CleanupResult, Deleted,
    EventList, EventStats, ListQuery, StatsQuery,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list).delete(bulk_delete))
        .route("/events/stats", get(stats))
        .route("/events/cleanup", post(cleanup))
        .route("/events/{id}", get(get_one).delete(delete))
}

/// `events.list`.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events", operation_id = "events.list",
    params(ListQuery),
    responses(
        (status = 200, body = ApiEnvelope<EventList>),
        (status = 400, body = ErrorBody),
        (status = 403, description = "No event access", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    Ok(ok("Events", service::list(&state, caller.user_id(), &q)?))
}

/// `events.getStats`.
#[utoipa::path(
    get, path = "/api/v1/events/stats", tag = "events", operation_id = "events.getStats",
    params(StatsQuery),
    responses((status = 200, body = ApiEnvelope<EventStats>), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    Ok(ok(
        "Event statistics",
        service::stats(&state, caller.user_id(), &q)?,
    ))
}

/// `events.get`.
#[utoipa::path(
    get, path = "/api/v1/events/{id}", tag = "events", operation_id = "events.get",
    params(("id" = String, Path, description = "Event id (24 hex)")),
    responses((status = 200, body = ApiEnvelope<Event>), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    Ok(ok("Event", service::get(&state, caller.user_id(), &id)?))
}

/// `events.delete`.
#[utoipa::path(
    delete, path = "/api/v1/events/{id}", tag = "events", operation_id = "events.delete",
    params(("id" = String, Path, description = "Event id (24 hex)")),
    responses((status = 200, body = ApiEnvelope<Option<String>>), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    service::delete(&state, caller.user_id(), &id)?;
    Ok(ok("Event deleted", ()))
}

/// `events.bulkDelete`.
#[utoipa::path(
    delete, path = "/api/v1/events", tag = "events", operation_id = "events.bulkDelete",
    request_body = BulkDeleteRequest,
    responses((status = 200, body = ApiEnvelope<Deleted>), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn bulk_delete(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    ApiJson(body): ApiJson<BulkDeleteRequest>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    let deleted = service::bulk_delete(&state, caller.user_id(), &body)?;
    Ok(ok("Events deleted", deleted))
}

/// `events.cleanup`.
#[utoipa::path(
    post, path = "/api/v1/events/cleanup", tag = "events", operation_id = "events.cleanup",
    request_body = CleanupRequest,
    responses((status = 200, body = ApiEnvelope<CleanupResult>), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn cleanup(
    State(state): State<AppState>,
    caller: Authed<perm::Events>,
    ApiJson(body): ApiJson<CleanupRequest>,
) -> ApiResult<Envelope> {
    require_event_access(&caller)?;
    let result = service::cleanup(&state, caller.user_id(), &body)?;
    Ok(ok("Old events deleted", result))
}
