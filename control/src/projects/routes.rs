//! HTTP routes of `projects.*`.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Level, Project};
use super::service::{self, AddPermission, CreateProject, UpdateProject};
use crate::auth::permission as perm;
use crate::auth::principal::Authed;
use crate::error::{ApiError, ApiResult};
use crate::openapi::ErrorBody;
use crate::state::AppState;
use crate::wire::{
    created, lenient, ok, sort_values, ApiJson, ApiQuery, Envelope, PageRequest, Pagination,
    SortedPageQuery,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{id}", get(get_one).put(update).delete(delete))
        .route(
            "/projects/{id}/permissions",
            get(list_permissions).post(add_permission),
        )
        .route(
            "/projects/{id}/permissions/{permission_id}",
            put(update_permission).delete(remove_permission),
        )
        .route("/projects/{id}/stats", get(stats))
}

/// `projects.list`: projects the caller owns or was granted, in the chosen realm.
#[utoipa::path(
    get, path = "/api/v1/projects", tag = "projects", operation_id = "projects.list",
    responses((status = 200, description = "Projects with pagination"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRead>,
    ApiQuery(q): ApiQuery<SortedPageQuery>,
) -> ApiResult<Envelope> {
    let page = PageRequest::from_query(q.page, q.limit, 20)?;
    let mut items = service::reachable(&state.store, caller.user_id())?
        .into_iter()
        .filter(|a| service::in_realm(&caller, &a.project.realm_ids))
        .map(|a| serde_json::to_value(a.project).unwrap_or(Value::Null))
        .collect::<Vec<_>>();
    sort_values(
        &mut items,
        q.sort_by.as_deref(),
        q.sort_order.as_deref(),
        &["id", "alias", "created_at", "updated_at"],
        "created_at",
    )?;
    let total = items.len() as u64;
    Ok(ok(
        "Projects",
        json!({"projects": page.slice(items), "pagination": Pagination::new(page, total)}),
    ))
}

/// `projects.create`
#[utoipa::path(
    post, path = "/api/v1/projects", tag = "projects", operation_id = "projects.create",
    request_body = CreateProject,
    responses((status = 201, description = "The new project"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsCreate>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<Envelope> {
    let project = service::create(&state, &caller, body)?;
    Ok(created("Project created", project))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    include_permissions: Option<bool>,
    #[allow(dead_code)]
    realm_id: Option<String>,
}

/// `projects.get`
#[utoipa::path(
    get, path = "/api/v1/projects/{id}", tag = "projects", operation_id = "projects.get",
    responses((status = 200, description = "The project"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRead>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<Envelope> {
    let access = service::access(&state.store, caller.user_id(), &id)?;
    let mut data = serde_json::to_value(&access.project).map_err(ApiError::internal)?;
    if q.include_permissions == Some(true) {
        let rows = service::permissions(&state, &caller, &id)?
            .iter()
            .map(|p| service::permission_view(&state.store, p))
            .collect::<ApiResult<Vec<_>>>()?;
        data["permissions"] = Value::Array(rows);
    }
    Ok(ok("Project", data))
}

/// `projects.update`
#[utoipa::path(
    put, path = "/api/v1/projects/{id}", tag = "projects", operation_id = "projects.update",
    request_body = UpdateProject,
    responses((status = 200, description = "The updated project"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<Envelope> {
    let project: Project = service::update(&state, &caller, &id, body)?;
    Ok(ok("Project updated", project))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    include_deleted_items: Option<bool>,
    #[allow(dead_code)]
    realm_id: Option<String>,
}

/// `projects.delete`: the project, its containers and its grants.
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}", tag = "projects", operation_id = "projects.delete",
    responses((status = 200, description = "What was deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsDelete>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<Envelope> {
    let deleted = service::delete(&state, &caller, &id).await?;
    let mut data = json!({"deleted": {
        "containers": deleted.containers.len(),
        "permissions": deleted.permissions,
        "aliases": 0,
    }});
    if q.include_deleted_items == Some(true) {
        data["deleted_items"] = json!({"containers": deleted.containers.iter()
            .map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()});
    }
    Ok(ok("Project deleted", data))
}

/// `projects.listPermissions`
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/permissions", tag = "projects", operation_id = "projects.listPermissions",
    responses((status = 200, description = "Permission rows with pagination"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_permissions(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRead>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SortedPageQuery>,
) -> ApiResult<Envelope> {
    let page = PageRequest::from_query(q.page, q.limit, 20)?;
    let mut rows = service::permissions(&state, &caller, &id)?
        .iter()
        .map(|p| service::permission_view(&state.store, p))
        .collect::<ApiResult<Vec<_>>>()?;
    sort_values(
        &mut rows,
        q.sort_by.as_deref(),
        q.sort_order.as_deref(),
        &[
            "id",
            "user_id",
            "permission_level",
            "created_at",
            "updated_at",
        ],
        "created_at",
    )?;
    let total = rows.len() as u64;
    Ok(ok(
        "Project permissions",
        json!({"permissions": page.slice(rows), "pagination": Pagination::new(page, total)}),
    ))
}

/// `projects.addPermission`
#[utoipa::path(
    post, path = "/api/v1/projects/{id}/permissions", tag = "projects", operation_id = "projects.addPermission",
    request_body = AddPermission,
    responses((status = 201, description = "The new grant"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_permission(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsInvite>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddPermission>,
) -> ApiResult<Envelope> {
    let grant = service::add_permission(&state, &caller, &id, body)?;
    Ok(created(
        "Permission added",
        service::permission_view(&state.store, &grant)?,
    ))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePermission {
    permission_level: Level,
}

/// `projects.updatePermission`
#[utoipa::path(
    put, path = "/api/v1/projects/{id}/permissions/{permissionId}", tag = "projects", operation_id = "projects.updatePermission",
    request_body = UpdatePermission,
    responses((status = 200, description = "The updated grant"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update_permission(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsChangeRoles>,
    Path((id, permission_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdatePermission>,
) -> ApiResult<Envelope> {
    let grant =
        service::update_permission(&state, &caller, &id, &permission_id, body.permission_level)?;
    Ok(ok(
        "Permission updated",
        service::permission_view(&state.store, &grant)?,
    ))
}

/// `projects.removePermission`
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}/permissions/{permissionId}", tag = "projects", operation_id = "projects.removePermission",
    responses((status = 200, description = "Removed"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_permission(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRemoveMember>,
    Path((id, permission_id)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    service::remove_permission(&state, &caller, &id, &permission_id)?;
    Ok(ok("Permission removed", Value::Null))
}

/// `projects.getStats`: live figures of every container in the project.
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/stats", tag = "projects", operation_id = "projects.getStats",
    responses((status = 200, description = "Per-container stats and a summary"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRead>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let started = std::time::Instant::now();
    let access = service::access(&state.store, caller.user_id(), &id)?;
    let containers = crate::containers::model::in_project(&state.store, &id)?;
    let mut stats = Vec::new();
    for c in &containers {
        stats.push(crate::containers::stats::of(&state, c, &access.project).await?);
    }
    Ok(ok(
        "Project stats",
        json!({
            "stats": stats,
            "summary": {
                "project_id": id,
                "project_name": access.project.alias,
                "container_count": containers.len(),
                "total_processing_time": format!("{}ms", started.elapsed().as_millis()),
            }
        }),
    ))
}
