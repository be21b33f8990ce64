//! HTTP routes of the module store (`proxyModules.*`, our extension).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::routing::get;
use axum::Router;

use super::service::{self, MAX_MODULE_BYTES};
use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::{ApiError, ApiResult};
use crate::openapi::ErrorBody;
use crate::state::AppState;
use crate::wire::{created, ok, Envelope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/proxy/modules", get(list))
        .route(
            "/containers/{id}/proxy/modules/{name}",
            get(get_one).put(put).delete(delete),
        )
}

/// `proxyModules.list`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/proxy/modules", tag = "proxyModules",
    operation_id = "proxyModules.list",
    description = "The container's hook modules: name, sha256, size, imports, timestamps.",
    responses((status = 200, description = "The modules"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok("Proxy modules", service::list(&state, &caller, &id)?))
}

/// `proxyModules.get`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/proxy/modules/{name}", tag = "proxyModules",
    operation_id = "proxyModules.get",
    responses((status = 200, description = "The module"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Proxy module",
        service::get(&state, &caller, &id, &name)?,
    ))
}

/// `proxyModules.put`: the body is the module itself (`application/wasm`,
/// at most 16 MiB, a larger limit than the API's JSON bodies).
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/proxy/modules/{name}", tag = "proxyModules",
    operation_id = "proxyModules.put",
    description = "Uploads or replaces a proxy-wasm module. It is validated and compiled first: \
                   a module that is not valid WebAssembly or imports what hooks do not provide \
                   is refused with 400 and the reason.",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, description = "Stored under a new name"),
        (status = 200, description = "Replaced"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Envelope> {
    let is_wasm = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/wasm");
    if !is_wasm {
        return Err(ApiError::UnsupportedMediaType(
            "modules are uploaded as application/wasm",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MODULE_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let wasm = axum::body::to_bytes(body, MAX_MODULE_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let (data, is_new) = service::put(&state, &caller, &id, &name, wasm.to_vec()).await?;
    Ok(if is_new {
        created("Proxy module stored", data)
    } else {
        ok("Proxy module replaced", data)
    })
}

/// `proxyModules.delete`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/proxy/modules/{name}", tag = "proxyModules",
    operation_id = "proxyModules.delete",
    responses(
        (status = 200, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "A hook still runs the module", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    service::delete(&state, &caller, &id, &name).await?;
    Ok(ok(
        "Proxy module deleted",
        serde_json::json!({"name": name}),
    ))
}
