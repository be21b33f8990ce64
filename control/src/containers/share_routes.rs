//! HTTP routes of `storageShares.*`.

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::shares::{self, CreateShare, ListQuery, UpdateShare};
use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::ApiResult;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use crate::wire::{created, ok, ApiJson, ApiQuery, Envelope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/storage/incoming", get(list_incoming))
        .route(
            "/containers/{id}/storage/incoming/{share_id}/mount",
            patch(toggle_incoming_mount),
        )
        .route("/containers/{id}/storage/shares", get(list).post(create))
        .route(
            "/containers/{id}/storage/shares/{share_id}",
            get(get_one).patch(update),
        )
        .route("/storage/shares", get(list_global))
        .route("/storage/shares/{share_id}", delete(remove))
        .route("/storage/incoming", get(list_incoming_global))
}

/// Changes reach containers when they next start; every write says so.
const APPLIES_AT_START: &str = "Storage share saved; mounts change when the containers next start";

/// `storageShares.listIncoming`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/storage/incoming", tag = "storage",
    operation_id = "storageShares.listIncoming",
    responses((status = 200, description = "Shares this container receives"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_incoming(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Incoming storage shares",
        shares::list_incoming(&state, &caller, &id)?,
    ))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountInput {
    mount: bool,
}

/// `storageShares.toggleIncomingMount`
#[utoipa::path(
    patch, path = "/api/v1/containers/{id}/storage/incoming/{shareId}/mount", tag = "storage",
    operation_id = "storageShares.toggleIncomingMount",
    request_body = MountInput,
    responses((status = 200, description = "The share and this container's answer"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_incoming_mount(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path((id, share_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MountInput>,
) -> ApiResult<Envelope> {
    let (share, over) =
        shares::toggle_incoming(&state, &caller, &id, &share_id, body.mount).await?;
    Ok(ok(
        APPLIES_AT_START,
        json!({"share": shares::view(&share), "override": over}),
    ))
}

/// `storageShares.list`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/storage/shares", tag = "storage",
    operation_id = "storageShares.list",
    responses((status = 200, description = "Shares this container offers"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Storage shares",
        shares::list(&state, &caller, &id, &q)?,
    ))
}

/// `storageShares.create`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/storage/shares", tag = "storage",
    operation_id = "storageShares.create",
    request_body = CreateShare,
    responses(
        (status = 201, description = "The new share"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateShare>,
) -> ApiResult<Envelope> {
    let share = shares::create(&state, &caller, &id, body).await?;
    Ok(created(APPLIES_AT_START, shares::view(&share)))
}

/// `storageShares.get`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/storage/shares/{shareId}", tag = "storage",
    operation_id = "storageShares.get",
    responses((status = 200, description = "The share"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path((id, share_id)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Storage share",
        shares::get(&state, &caller, &id, &share_id)?,
    ))
}

/// `storageShares.update`
#[utoipa::path(
    patch, path = "/api/v1/containers/{id}/storage/shares/{shareId}", tag = "storage",
    operation_id = "storageShares.update",
    request_body = UpdateShare,
    responses((status = 200, description = "The updated share"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path((id, share_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateShare>,
) -> ApiResult<Envelope> {
    let share = shares::update(&state, &caller, &id, &share_id, body).await?;
    Ok(ok(APPLIES_AT_START, shares::view(&share)))
}

/// `storageShares.delete`
#[utoipa::path(
    delete, path = "/api/v1/storage/shares/{shareId}", tag = "storage",
    operation_id = "storageShares.delete",
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    Path(share_id): Path<String>,
) -> ApiResult<Envelope> {
    shares::delete(&state, &caller, &share_id).await?;
    Ok(ok(APPLIES_AT_START, Value::Null))
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RealmQuery {
    #[allow(dead_code)]
    realm_id: Option<String>,
}

/// `storageShares.listGlobal`
#[utoipa::path(
    get, path = "/api/v1/storage/shares", tag = "storage",
    operation_id = "storageShares.listGlobal",
    responses((status = 200, description = "Shares offered by the caller's containers")),
    security(("bearer" = []))
)]
pub async fn list_global(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    ApiQuery(_q): ApiQuery<RealmQuery>,
) -> ApiResult<Envelope> {
    Ok(ok("Storage shares", shares::list_global(&state, &caller)?))
}

/// `storageShares.listIncomingGlobal`
#[utoipa::path(
    get, path = "/api/v1/storage/incoming", tag = "storage",
    operation_id = "storageShares.listIncomingGlobal",
    responses((status = 200, description = "Shares the caller's containers receive")),
    security(("bearer" = []))
)]
pub async fn list_incoming_global(
    State(state): State<AppState>,
    caller: Authed<perm::StorageShares>,
    ApiQuery(_q): ApiQuery<RealmQuery>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Incoming storage shares",
        shares::list_incoming_global(&state, &caller)?,
    ))
}
