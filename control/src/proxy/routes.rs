//! HTTP routes of `proxyPermissionsContainer.*`, `proxyPermissionsProject.*`,
//! `proxyDiscovery.*` and `proxyHooks.*`. Writes take `If-Match` (header,
//! or the SDK's `ifMatch` query) and answer with the new `etag`, also sent
//! as the `ETag` header.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, put};
use axum::Router;
use serde_json::Value;
use utoipa::OpenApi;

use super::documents::{Owner, Precondition};
use super::hooks::{self, HookInput, MoveInput};
use super::service::{
    self, ContainerDocumentInput, DefaultInput, IpGroupInput, JwtGroupInput, PasswordGroupInput,
    ProgramAccessInput, ProjectDocumentInput, SettingsInput, StateInput, TokenGroupInput,
};
use crate::auth::permission as perm;
use crate::auth::principal::{Authed, Principal};
use crate::containers::model::Container;
use crate::error::{ApiError, ApiResult};
use crate::openapi::ErrorBody;
use crate::projects::model::{Level, Project};
use crate::state::AppState;
use crate::wire::{created, form_pairs, ok, ApiJson, Envelope};

pub fn routes() -> Router<AppState> {
    let c = "/containers/{id}/proxy";
    let p = "/projects/{id}/proxy";
    Router::new()
        .route(
            &format!("{c}/permissions"),
            get(c_get).put(c_replace).delete(c_delete),
        )
        .route(&format!("{c}/permissions/default"), patch(c_default))
        .route(&format!("{c}/permissions/state"), patch(c_state))
        .route(
            &format!("{c}/permissions/groups/{{name}}"),
            axum::routing::delete(c_remove_auth_group),
        )
        .route(&format!("{c}/permissions/groups/{{name}}/ip"), put(c_ip))
        .route(&format!("{c}/permissions/groups/{{name}}/jwt"), put(c_jwt))
        .route(
            &format!("{c}/permissions/groups/{{name}}/password"),
            put(c_password),
        )
        .route(
            &format!("{c}/permissions/groups/{{name}}/token"),
            put(c_token),
        )
        .route(
            &format!("{c}/permissions/permissions/{{name}}"),
            put(c_set_group).delete(c_remove_group),
        )
        .route(
            &format!("{c}/permissions/permissions/{{name}}/{{program}}"),
            axum::routing::delete(c_remove_program),
        )
        .route(
            &format!("{p}/permissions"),
            get(p_get).put(p_replace).delete(p_delete),
        )
        .route(&format!("{p}/permissions/default"), patch(p_default))
        .route(&format!("{p}/permissions/state"), patch(p_state))
        .route(
            &format!("{p}/permissions/groups/{{name}}"),
            axum::routing::delete(p_remove_auth_group),
        )
        .route(&format!("{p}/permissions/groups/{{name}}/ip"), put(p_ip))
        .route(&format!("{p}/permissions/groups/{{name}}/jwt"), put(p_jwt))
        .route(
            &format!("{p}/permissions/groups/{{name}}/password"),
            put(p_password),
        )
        .route(
            &format!("{p}/permissions/groups/{{name}}/token"),
            put(p_token),
        )
        .route(
            &format!("{p}/permissions/permissions/{{name}}"),
            put(p_set_group).delete(p_remove_group),
        )
        .route(
            &format!("{p}/permissions/permissions/{{name}}/{{program}}"),
            axum::routing::delete(p_remove_program),
        )
        .route(&format!("{c}/groups"), get(list_groups))
        .route(&format!("{c}/services"), get(list_services))
        .route(&format!("{c}/services/{{service}}"), get(get_service))
        .route(
            &format!("{c}/settings"),
            get(get_settings).put(update_settings),
        )
        .route(&format!("{c}/hooks"), get(list_hooks))
        .route(
            &format!("{c}/hooks/{{service}}"),
            get(list_service_hooks).post(add_hook).delete(clear_hooks),
        )
        .route(
            &format!("{c}/hooks/{{service}}/{{hook}}"),
            get(get_hook).put(update_hook).delete(remove_hook),
        )
        .route(
            &format!("{c}/hooks/{{service}}/{{hook}}/position"),
            patch(move_hook),
        )
}

/// The proxy operations in the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        c_get, c_replace, c_delete, c_default, c_state, c_remove_auth_group, c_ip, c_jwt,
        c_password, c_token, c_set_group, c_remove_group, c_remove_program,
        p_get, p_replace, p_delete, p_default, p_state, p_remove_auth_group, p_ip, p_jwt,
        p_password, p_token, p_set_group, p_remove_group, p_remove_program,
        list_groups, list_services, get_service, get_settings, update_settings,
        list_hooks, list_service_hooks, add_hook, clear_hooks, get_hook, update_hook,
        remove_hook, move_hook,
    ),
    components(schemas(
        ContainerDocumentInput, ProjectDocumentInput, IpGroupInput, JwtGroupInput,
        PasswordGroupInput, TokenGroupInput, ProgramAccessInput, DefaultInput, StateInput,
        SettingsInput, HookInput, hooks::HookScriptInput, MoveInput,
    )),
    tags(
        (name = "proxyPermissionsContainer", description = "A container's proxy document: groups, program rules, default, state"),
        (name = "proxyPermissionsProject", description = "A project's proxy document, inherited by its containers"),
        (name = "proxyDiscovery", description = "What the proxy enforces for a container"),
        (name = "proxyHooks", description = "First-match hook lists per service"),
    )
)]
pub struct ProxyApi;

/// `If-Match` from the header, else from the `ifMatch` query parameter.
pub struct IfMatch(pub Precondition);

impl FromRequestParts<AppState> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::IF_MATCH)
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .map_err(|_| ApiError::field("If-Match", "must be visible ASCII"))
            })
            .transpose()?;
        let query = || {
            form_pairs(parts.uri.query().unwrap_or(""))
                .into_iter()
                .find(|(k, _)| k == "ifMatch")
                .map(|(_, v)| v)
        };
        Ok(IfMatch(Precondition {
            if_match: header.or_else(query),
            required: state.settings.require_if_match,
        }))
    }
}

/// The envelope, with the document's tag also as the `ETag` header.
fn answer(envelope: Envelope, data_etag: Option<&str>) -> Response {
    let mut response = envelope.into_response();
    if let Some(Ok(v)) = data_etag.map(|t| HeaderValue::from_str(&format!("\"{t}\""))) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn done(message: &'static str, data: Value) -> Response {
    let tag = data["etag"].as_str().map(str::to_string);
    answer(ok(message, data), tag.as_deref())
}

fn container(state: &AppState, caller: &Principal, id: &str, level: Level) -> ApiResult<Container> {
    Ok(crate::containers::service::lookup(state, caller, id, level)?.0)
}

fn project(state: &AppState, caller: &Principal, id: &str, level: Level) -> ApiResult<Project> {
    Ok(
        crate::projects::service::access(&state.store, caller.user_id(), id)?
            .require(level)?
            .project,
    )
}

// ---- proxyPermissionsContainer.* ----

/// `proxyPermissionsContainer.get`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/permissions",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.get",
    responses((status = 200, description = "The container's document with `file_version` and `etag`"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_get(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy permissions",
        service::get(&state, Owner::Container(&c))?,
    ))
}

/// `proxyPermissionsContainer.replace`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.replace",
    request_body = ContainerDocumentInput,
    responses((status = 200, description = "The stored document"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 428, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_replace(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<ContainerDocumentInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::replace_container(&state, &c, &pre, body).await?;
    Ok(done("Proxy permissions replaced", view))
}

/// `proxyPermissionsContainer.delete`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/permissions",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.delete",
    responses((status = 200, description = "The document is gone; the empty one is shown"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_delete(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::delete(&state, Owner::Container(&c), &pre).await?;
    Ok(done("Proxy permissions deleted", view))
}

/// `proxyPermissionsContainer.updateDefault`
#[utoipa::path(patch, path = "/api/v1/containers/{id}/proxy/permissions/default",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.updateDefault",
    request_body = DefaultInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_default(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<DefaultInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::set_default(&state, Owner::Container(&c), &pre, body.default).await?;
    Ok(done("Default access updated", view))
}

/// `proxyPermissionsContainer.updateState`
#[utoipa::path(patch, path = "/api/v1/containers/{id}/proxy/permissions/state",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.updateState",
    request_body = StateInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_state(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<StateInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_state(&state, Owner::Container(&c), &pre, body.enable_proxy).await?;
    Ok(done("Proxy state updated", view))
}

/// `proxyPermissionsContainer.removeAuthGroup`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/permissions/groups/{groupName}",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.removeAuthGroup",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_remove_auth_group(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::remove_group(&state, Owner::Container(&c), &pre, &name).await?;
    Ok(done("Group removed", view))
}

/// `proxyPermissionsContainer.setIpGroup`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions/groups/{groupName}/ip",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.setIpGroup",
    request_body = IpGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_ip(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<IpGroupInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Container(&c), &pre, &name, body.into()).await?;
    Ok(done("IP group set", view))
}

/// `proxyPermissionsContainer.setJwtGroup`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions/groups/{groupName}/jwt",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.setJwtGroup",
    request_body = JwtGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_jwt(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<JwtGroupInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Container(&c), &pre, &name, body.into()).await?;
    Ok(done("JWT group set", view))
}

/// `proxyPermissionsContainer.setPasswordGroup`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions/groups/{groupName}/password",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.setPasswordGroup",
    request_body = PasswordGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_password(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<PasswordGroupInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Container(&c), &pre, &name, body.into()).await?;
    Ok(done("Password group set", view))
}

/// `proxyPermissionsContainer.setTokenGroup`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions/groups/{groupName}/token",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.setTokenGroup",
    request_body = TokenGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_token(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<TokenGroupInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Container(&c), &pre, &name, body.into()).await?;
    Ok(done("Token group set", view))
}

/// `proxyPermissionsContainer.setGroup`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/permissions/permissions/{groupName}",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.setGroup",
    request_body = ProgramAccessInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_set_group(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<ProgramAccessInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::set_program(&state, Owner::Container(&c), &pre, &name, body).await?;
    Ok(done("Program access set", view))
}

/// `proxyPermissionsContainer.removeGroup`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/permissions/permissions/{groupName}",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.removeGroup",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_remove_group(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::remove_permissions(&state, Owner::Container(&c), &pre, &name).await?;
    Ok(done("Group permissions removed", view))
}

/// `proxyPermissionsContainer.removeProgram`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/permissions/permissions/{groupName}/{program}",
    tag = "proxyPermissionsContainer", operation_id = "proxyPermissionsContainer.removeProgram",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn c_remove_program(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, name, program)): Path<(String, String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::remove_program(&state, Owner::Container(&c), &pre, &name, &program).await?;
    Ok(done("Program access removed", view))
}

// ---- proxyPermissionsProject.* ----

/// `proxyPermissionsProject.get`
#[utoipa::path(get, path = "/api/v1/projects/{id}/proxy/permissions",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.get",
    responses((status = 200, description = "The project's document with `file_version` and `etag`"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_get(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy permissions",
        service::get(&state, Owner::Project(&p))?,
    ))
}

/// `proxyPermissionsProject.replace`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.replace",
    request_body = ProjectDocumentInput,
    responses((status = 200, description = "The stored document"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 428, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_replace(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<ProjectDocumentInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::replace_project(&state, Owner::Project(&p), &pre, body).await?;
    Ok(done("Proxy permissions replaced", view))
}

/// `proxyPermissionsProject.delete`
#[utoipa::path(delete, path = "/api/v1/projects/{id}/proxy/permissions",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.delete",
    responses((status = 200, description = "The document is gone; the empty one is shown"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_delete(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::delete(&state, Owner::Project(&p), &pre).await?;
    Ok(done("Proxy permissions deleted", view))
}

/// `proxyPermissionsProject.updateDefault`
#[utoipa::path(patch, path = "/api/v1/projects/{id}/proxy/permissions/default",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.updateDefault",
    request_body = DefaultInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_default(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<DefaultInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::set_default(&state, Owner::Project(&p), &pre, body.default).await?;
    Ok(done("Default access updated", view))
}

/// `proxyPermissionsProject.updateState`
#[utoipa::path(patch, path = "/api/v1/projects/{id}/proxy/permissions/state",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.updateState",
    request_body = StateInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_state(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<StateInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::set_state(&state, Owner::Project(&p), &pre, body.enable_proxy).await?;
    Ok(done("Proxy state updated", view))
}

/// `proxyPermissionsProject.removeAuthGroup`
#[utoipa::path(delete, path = "/api/v1/projects/{id}/proxy/permissions/groups/{groupName}",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.removeAuthGroup",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_remove_auth_group(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::remove_group(&state, Owner::Project(&p), &pre, &name).await?;
    Ok(done("Group removed", view))
}

/// `proxyPermissionsProject.setIpGroup`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions/groups/{groupName}/ip",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.setIpGroup",
    request_body = IpGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_ip(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<IpGroupInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Project(&p), &pre, &name, body.into()).await?;
    Ok(done("IP group set", view))
}

/// `proxyPermissionsProject.setJwtGroup`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions/groups/{groupName}/jwt",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.setJwtGroup",
    request_body = JwtGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_jwt(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<JwtGroupInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Project(&p), &pre, &name, body.into()).await?;
    Ok(done("JWT group set", view))
}

/// `proxyPermissionsProject.setPasswordGroup`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions/groups/{groupName}/password",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.setPasswordGroup",
    request_body = PasswordGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_password(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<PasswordGroupInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Project(&p), &pre, &name, body.into()).await?;
    Ok(done("Password group set", view))
}

/// `proxyPermissionsProject.setTokenGroup`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions/groups/{groupName}/token",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.setTokenGroup",
    request_body = TokenGroupInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_token(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<TokenGroupInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::set_group(&state, Owner::Project(&p), &pre, &name, body.into()).await?;
    Ok(done("Token group set", view))
}

/// `proxyPermissionsProject.setGroup`
#[utoipa::path(put, path = "/api/v1/projects/{id}/proxy/permissions/permissions/{groupName}",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.setGroup",
    request_body = ProgramAccessInput,
    responses((status = 200, description = "The document"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_set_group(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<ProgramAccessInput>,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::set_program(&state, Owner::Project(&p), &pre, &name, body).await?;
    Ok(done("Program access set", view))
}

/// `proxyPermissionsProject.removeGroup`
#[utoipa::path(delete, path = "/api/v1/projects/{id}/proxy/permissions/permissions/{groupName}",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.removeGroup",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_remove_group(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) = service::remove_permissions(&state, Owner::Project(&p), &pre, &name).await?;
    Ok(done("Group permissions removed", view))
}

/// `proxyPermissionsProject.removeProgram`
#[utoipa::path(delete, path = "/api/v1/projects/{id}/proxy/permissions/permissions/{groupName}/{program}",
    tag = "proxyPermissionsProject", operation_id = "proxyPermissionsProject.removeProgram",
    responses((status = 200, description = "The document"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn p_remove_program(
    State(state): State<AppState>,
    caller: Authed<perm::ProjectsUpdate>,
    Path((id, name, program)): Path<(String, String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let p = project(&state, &caller, &id, Level::Edit)?;
    let (_, view) =
        service::remove_program(&state, Owner::Project(&p), &pre, &name, &program).await?;
    Ok(done("Program access removed", view))
}

// ---- proxyDiscovery.* ----

/// `proxyDiscovery.listContainerProxyGroups`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/groups",
    tag = "proxyDiscovery", operation_id = "proxyDiscovery.listContainerProxyGroups",
    responses((status = 200, description = "Enforced groups (own and inherited) with their rule counts"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done("Proxy groups", service::groups(&state, &c)?))
}

/// `proxyDiscovery.listContainerProxyServices`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/services",
    tag = "proxyDiscovery", operation_id = "proxyDiscovery.listContainerProxyServices",
    responses((status = 200, description = "Service names known for the container"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_services(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done("Proxy services", service::services(&state, &c)?))
}

/// `proxyDiscovery.getContainerProxyService`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/services/{service}",
    tag = "proxyDiscovery", operation_id = "proxyDiscovery.getContainerProxyService",
    responses((status = 200, description = "The merged (project + container) view of one service"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_service(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy service",
        service::service_view(&state, &c, &name)?,
    ))
}

/// `proxyDiscovery.getContainerProxySettings`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/settings",
    tag = "proxyDiscovery", operation_id = "proxyDiscovery.getContainerProxySettings",
    responses((status = 200, description = "enable_proxy and default of the container's document"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy settings",
        service::settings(&state, Owner::Container(&c))?,
    ))
}

/// `proxyDiscovery.updateContainerProxySettings`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/settings",
    tag = "proxyDiscovery", operation_id = "proxyDiscovery.updateContainerProxySettings",
    request_body = SettingsInput,
    responses((status = 200, description = "The settings"), (status = 400, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<SettingsInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let view = service::update_settings(&state, Owner::Container(&c), &pre, body).await?;
    Ok(done("Proxy settings updated", view))
}

// ---- proxyHooks.* ----

/// `proxyHooks.listContainerProxyHooks`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/hooks",
    tag = "proxyHooks", operation_id = "proxyHooks.listContainerProxyHooks",
    responses((status = 200, description = "Every service's hook list"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_hooks(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy hooks",
        hooks::list_all(&state, Owner::Container(&c))?,
    ))
}

/// `proxyHooks.listContainerProxyServiceHooks`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/hooks/{service}",
    tag = "proxyHooks", operation_id = "proxyHooks.listContainerProxyServiceHooks",
    responses((status = 200, description = "One service's hook list in order"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_service_hooks(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path((id, svc)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy hooks",
        hooks::list(&state, Owner::Container(&c), &svc)?,
    ))
}

/// `proxyHooks.addContainerProxyHook`
#[utoipa::path(post, path = "/api/v1/containers/{id}/proxy/hooks/{service}",
    tag = "proxyHooks", operation_id = "proxyHooks.addContainerProxyHook",
    request_body = HookInput,
    responses((status = 201, description = "The new hook with its id and position"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_hook(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, svc)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<HookInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    let data = hooks::add(&state, Owner::Container(&c), &pre, &svc, body).await?;
    let tag = data["etag"].as_str().map(str::to_string);
    Ok(answer(created("Hook added", data), tag.as_deref()))
}

/// `proxyHooks.clearContainerProxyServiceHooks`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/hooks/{service}",
    tag = "proxyHooks", operation_id = "proxyHooks.clearContainerProxyServiceHooks",
    responses((status = 200, description = "How many hooks were removed"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn clear_hooks(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, svc)): Path<(String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    Ok(done(
        "Hooks cleared",
        hooks::clear(&state, Owner::Container(&c), &pre, &svc).await?,
    ))
}

/// `proxyHooks.getContainerProxyHook`
#[utoipa::path(get, path = "/api/v1/containers/{id}/proxy/hooks/{service}/{hookId}",
    tag = "proxyHooks", operation_id = "proxyHooks.getContainerProxyHook",
    responses((status = 200, description = "The hook"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_hook(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path((id, svc, hook)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Read)?;
    Ok(done(
        "Proxy hook",
        hooks::get(&state, Owner::Container(&c), &svc, &hook)?,
    ))
}

/// `proxyHooks.updateContainerProxyHook`
#[utoipa::path(put, path = "/api/v1/containers/{id}/proxy/hooks/{service}/{hookId}",
    tag = "proxyHooks", operation_id = "proxyHooks.updateContainerProxyHook",
    request_body = HookInput,
    responses((status = 200, description = "The updated hook"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_hook(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, svc, hook)): Path<(String, String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<HookInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    Ok(done(
        "Hook updated",
        hooks::update(&state, Owner::Container(&c), &pre, &svc, &hook, body).await?,
    ))
}

/// `proxyHooks.removeContainerProxyHook`
#[utoipa::path(delete, path = "/api/v1/containers/{id}/proxy/hooks/{service}/{hookId}",
    tag = "proxyHooks", operation_id = "proxyHooks.removeContainerProxyHook",
    responses((status = 200, description = "The document's new version"), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_hook(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, svc, hook)): Path<(String, String, String)>,
    IfMatch(pre): IfMatch,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    Ok(done(
        "Hook removed",
        hooks::remove(&state, Owner::Container(&c), &pre, &svc, &hook).await?,
    ))
}

/// `proxyHooks.moveContainerProxyHook`
#[utoipa::path(patch, path = "/api/v1/containers/{id}/proxy/hooks/{service}/{hookId}/position",
    tag = "proxyHooks", operation_id = "proxyHooks.moveContainerProxyHook",
    request_body = MoveInput,
    responses((status = 200, description = "The hook at its new position"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn move_hook(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, svc, hook)): Path<(String, String, String)>,
    IfMatch(pre): IfMatch,
    ApiJson(body): ApiJson<MoveInput>,
) -> ApiResult<Response> {
    let c = container(&state, &caller, &id, Level::Edit)?;
    Ok(done(
        "Hook moved",
        hooks::move_to(
            &state,
            Owner::Container(&c),
            &pre,
            &svc,
            &hook,
            body.position,
        )
        .await?,
    ))
}
