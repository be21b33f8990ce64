//! HTTP routes of `proxyAliases.*`.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::service::{self, CreateAlias, ListFilter, UpdateAlias};
use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::ApiResult;
use crate::openapi::ErrorBody;
use crate::projects::model::Level;
use crate::state::AppState;
use crate::wire::{created, ok, ApiJson, ApiQuery, Envelope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/proxy/aliases", get(list).post(create))
        .route(
            "/proxy/aliases/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/proxy/aliases/{id}/state", patch(set_state))
}

/// `proxyAliases.list`
#[utoipa::path(
    get, path = "/api/v1/proxy/aliases", tag = "proxyAliases", operation_id = "proxyAliases.list",
    responses((status = 200, description = "Aliases of the caller's containers"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    ApiQuery(q): ApiQuery<ListFilter>,
) -> ApiResult<Envelope> {
    let aliases = service::list(&state, &caller, &q)?
        .iter()
        .map(|a| service::view(&state, a))
        .collect::<ApiResult<Vec<_>>>()?;
    let count = aliases.len();
    Ok(ok("Aliases", json!({"aliases": aliases, "count": count})))
}

/// `proxyAliases.create`
#[utoipa::path(
    post, path = "/api/v1/proxy/aliases", tag = "proxyAliases", operation_id = "proxyAliases.create",
    request_body = CreateAlias,
    responses(
        (status = 201, description = "The new alias"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The label is taken on this server"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    ApiJson(body): ApiJson<CreateAlias>,
) -> ApiResult<Envelope> {
    let a = service::create(&state, &caller, body).await?;
    Ok(created("Alias created", service::view(&state, &a)?))
}

/// `proxyAliases.get`
#[utoipa::path(
    get, path = "/api/v1/proxy/aliases/{id}", tag = "proxyAliases", operation_id = "proxyAliases.get",
    responses((status = 200, description = "The alias"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let (a, c) = service::find(&state, &caller, &id, Level::Read)?;
    Ok(ok("Alias", service::detailed_view(&state, &a, &c)?))
}

/// `proxyAliases.update`
#[utoipa::path(
    patch, path = "/api/v1/proxy/aliases/{id}", tag = "proxyAliases", operation_id = "proxyAliases.update",
    request_body = UpdateAlias,
    responses(
        (status = 200, description = "The updated alias"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAlias>,
) -> ApiResult<Envelope> {
    let a = service::update(&state, &caller, &id, body).await?;
    Ok(ok("Alias updated", service::view(&state, &a)?))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateInput {
    enabled: bool,
}

/// `proxyAliases.setState`
#[utoipa::path(
    patch, path = "/api/v1/proxy/aliases/{id}/state", tag = "proxyAliases", operation_id = "proxyAliases.setState",
    request_body = StateInput,
    responses((status = 200, description = "The alias"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn set_state(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StateInput>,
) -> ApiResult<Envelope> {
    let a = service::set_state(&state, &caller, &id, body.enabled).await?;
    let message = if a.enabled {
        "Alias enabled"
    } else {
        "Alias disabled"
    };
    Ok(ok(message, service::view(&state, &a)?))
}

/// `proxyAliases.delete`
#[utoipa::path(
    delete, path = "/api/v1/proxy/aliases/{id}", tag = "proxyAliases", operation_id = "proxyAliases.delete",
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::ProxyAliases>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    service::delete(&state, &caller, &id).await?;
    Ok(ok("Alias deleted", serde_json::Value::Null))
}
