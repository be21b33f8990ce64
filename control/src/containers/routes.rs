//! HTTP routes of `containers.*`, `env.*` and `firewall.*`.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::firewall::{self, Direction, RuleFilter, RuleInput, ToggleInput};
use super::model::{self, Container, STATUS_LOGS};
use super::network::{self, NetworkInput};
use super::service::{self, CopyContainer, CreateContainer, Operation, UpdateContainer};
use super::snapshots::{self, AliasInput, CreateSnapshot};
use super::{env, stats};
use crate::auth::permission as perm;
use crate::auth::principal::{Authed, Principal};
use crate::error::{ApiError, ApiResult};
use crate::openapi::ErrorBody;
use crate::projects::model::Level;
use crate::projects::service as projects;
use crate::state::AppState;
use crate::wire::{
    created, lenient, ok, sort_values, ApiJson, ApiQuery, Envelope, PageRequest, Pagination,
    SortedPageQuery,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers", get(list))
        .route(
            "/projects/{id}/containers",
            get(list_by_project).post(create),
        )
        .route("/containers/{id}", get(get_one).put(update).delete(delete))
        .route("/containers/{id}/authorize", post(authorize))
        .route("/containers/{id}/copy", post(copy))
        .route("/containers/{id}/sync", post(sync))
        .route("/containers/{id}/kvm", put(set_kvm))
        .route("/containers/{id}/stats", get(get_stats))
        .route("/containers/{id}/status-logs", get(status_logs))
        .route("/containers/{id}/{operation}", post(manage))
        .route("/containers/{id}/env", get(env_list).put(env_bulk_set))
        .route(
            "/containers/{id}/env/{key}",
            put(env_set).delete(env_delete),
        )
        .route("/containers/{id}/firewall/rules", get(firewall_list))
        .route("/containers/{id}/firewall/reset", post(firewall_reset))
        .route(
            "/containers/{id}/firewall/ingress",
            post(add_ingress)
                .patch(toggle_ingress)
                .delete(remove_ingress),
        )
        .route(
            "/containers/{id}/firewall/egress",
            post(add_egress).patch(toggle_egress).delete(remove_egress),
        )
        .route(
            "/containers/{id}/network",
            get(network_get).put(network_update).delete(network_remove),
        )
        .route("/containers/{id}/network/start", post(network_start))
        .route("/containers/{id}/network/stop", post(network_stop))
        .route(
            "/containers/{id}/snapshots",
            get(snapshots_list).post(snapshots_create),
        )
        .route(
            "/containers/{id}/snapshots/{name}",
            put(snapshots_restore).delete(snapshots_delete),
        )
        .route(
            "/containers/{id}/snapshots/{name}/alias",
            put(snapshots_alias),
        )
        .merge(super::share_routes::routes())
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    page: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    limit: Option<u64>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    #[allow(dead_code)]
    realm_id: Option<String>,
    #[allow(dead_code)]
    runtime: Option<String>,
    #[allow(dead_code)]
    include_proxy_domains: Option<String>,
    #[allow(dead_code)]
    include_proxy_permissions: Option<String>,
    #[allow(dead_code)]
    include_prespawn: Option<String>,
    #[allow(dead_code)]
    include_expired: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    include_deleting: Option<bool>,
}

fn page_of(state: &AppState, items: Vec<Container>, q: &ListQuery) -> ApiResult<Value> {
    let page = PageRequest::from_query(q.page, q.limit, 20)?;
    let mut views = items
        .iter()
        .filter(|c| q.include_deleting == Some(true) || c.status != model::status::DELETING)
        .map(|c| service::view(state, c))
        .collect::<ApiResult<Vec<_>>>()?;
    sort_values(
        &mut views,
        q.sort_by.as_deref(),
        q.sort_order.as_deref(),
        &["id", "name", "status", "created_at", "updated_at"],
        "created_at",
    )?;
    let total = views.len() as u64;
    Ok(json!({"containers": page.slice(views), "pagination": Pagination::new(page, total)}))
}

/// `containers.list`: every container the caller can read, in the chosen realm.
#[utoipa::path(
    get, path = "/api/v1/containers", tag = "containers", operation_id = "containers.list",
    responses((status = 200, description = "Containers with pagination"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Envelope> {
    let mut items = Vec::new();
    for a in projects::reachable(&state.store, caller.user_id())? {
        items.extend(
            model::in_project(&state.store, &a.project.id)?
                .into_iter()
                .filter(|c| {
                    projects::in_realm(&caller, &c.realm_ids)
                        || projects::in_realm(&caller, &a.project.realm_ids)
                }),
        );
    }
    Ok(ok("Containers", page_of(&state, items, &q)?))
}

/// `containers.listByProject`
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/containers", tag = "containers", operation_id = "containers.listByProject",
    responses((status = 200, description = "The project's containers"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_by_project(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Envelope> {
    projects::access(&state.store, caller.user_id(), &id)?;
    let items = model::in_project(&state.store, &id)?;
    Ok(ok("Containers", page_of(&state, items, &q)?))
}

/// `containers.create`
#[utoipa::path(
    post, path = "/api/v1/projects/{id}/containers", tag = "containers", operation_id = "containers.create",
    request_body = CreateContainer,
    responses(
        (status = 201, description = "The new container"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersCreate>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateContainer>,
) -> ApiResult<Envelope> {
    let c = service::create(&state, &caller, &id, body).await?;
    Ok(created("Container created", service::view(&state, &c)?))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    #[allow(dead_code)]
    runtime: Option<String>,
    #[allow(dead_code)]
    include_proxy_domains: Option<String>,
    #[allow(dead_code)]
    include_proxy_permissions: Option<String>,
    #[allow(dead_code)]
    realm_id: Option<String>,
}

/// `containers.get`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}", tag = "containers", operation_id = "containers.get",
    responses((status = 200, description = "The container"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
    ApiQuery(_q): ApiQuery<GetQuery>,
) -> ApiResult<Envelope> {
    let (c, _) = service::lookup(&state, &caller, &id, Level::Read)?;
    let mut v = service::view(&state, &c)?;
    v["warnings"] = json!([]);
    Ok(ok("Container", v))
}

/// `containers.update`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}", tag = "containers", operation_id = "containers.update",
    request_body = UpdateContainer,
    responses((status = 200, description = "The updated container"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateContainer>,
) -> ApiResult<Envelope> {
    let c = service::update(&state, &caller, &id, body).await?;
    Ok(ok("Container updated", service::view(&state, &c)?))
}

/// `containers.delete`: stops the container and removes everything it holds.
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}", tag = "containers", operation_id = "containers.delete",
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersDelete>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    service::delete(&state, &caller, &id).await?;
    Ok(ok("Container deleted", Value::Null))
}

/// `containers.manage`: start, stop, force-stop, restart, pause, resume.
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/{operation}", tag = "containers", operation_id = "containers.manage",
    responses(
        (status = 200, description = "The operation's outcome"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already running, not running, or busy", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn manage(
    State(state): State<AppState>,
    caller: Authed<perm::AnyCaller>,
    Path((id, operation)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    let op = Operation::parse(&operation)?;
    let c = service::manage(&state, &caller, &id, op).await?;
    Ok(ok(
        "Container operation done",
        json!({
            "error": false,
            "operation": op.name(),
            "container_id": c.id,
            "project_id": c.project_id,
            "message": format!("{} done", op.name()),
            "status": c.status,
        }),
    ))
}

/// `containers.authorize`: a signed container claim for the data plane.
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/authorize", tag = "containers", operation_id = "containers.authorize",
    responses((status = 200, description = "The claim and its lifetime"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Container authorized",
        service::authorize(&state, &caller, &id)?,
    ))
}

/// `containers.copy`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/copy", tag = "containers", operation_id = "containers.copy",
    request_body = CopyContainer,
    responses((status = 201, description = "The copy"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn copy(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersCreate>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CopyContainer>,
) -> ApiResult<Envelope> {
    let (copy_fw, copy_net) = (
        body.copy_firewall_rules.unwrap_or(false),
        body.copy_network_rules.unwrap_or(false),
    );
    let c = service::copy(&state, &caller, &id, body).await?;
    let mut v = service::view(&state, &c)?;
    v["copy_firewall_rules"] = json!(copy_fw);
    v["copy_network_rules"] = json!(copy_net);
    v["container_image_id"] = Value::Null;
    Ok(created("Container copied", v))
}

/// `containers.sync`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/sync", tag = "containers", operation_id = "containers.sync",
    responses((status = 200, description = "Synced from the source"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn sync(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let (c, source) = service::sync(&state, &caller, &id).await?;
    Ok(ok(
        "Container synced",
        json!({"container_id": c.id, "source_container_id": source, "status": c.status}),
    ))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KvmInput {
    kvm: Option<bool>,
    dev_kvm: Option<bool>,
}

/// `containers.setContainerKvm`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/kvm", tag = "containers", operation_id = "containers.setContainerKvm",
    request_body = KvmInput,
    responses(
        (status = 200, description = "The new KVM setting"),
        (status = 403, description = "Free-tier server", body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 503, description = "No /dev/kvm on this host", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_kvm(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersKvm>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<KvmInput>,
) -> ApiResult<Envelope> {
    let c = service::set_kvm(&state, &caller, &id, body.kvm, body.dev_kvm)?;
    Ok(ok(
        "KVM updated",
        json!({"id": c.id, "name": c.name, "status": c.status, "kvm": c.kvm}),
    ))
}

/// `containers.getStats`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/stats", tag = "containers", operation_id = "containers.getStats",
    responses((status = 200, description = "Live figures"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_stats(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let (c, access) = service::lookup(&state, &caller, &id, Level::Read)?;
    Ok(ok(
        "Container stats",
        stats::of(&state, &c, &access.project).await?,
    ))
}

/// `containers.getStatusLogs`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/status-logs", tag = "containers", operation_id = "containers.getStatusLogs",
    responses((status = 200, description = "Status transitions with pagination"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn status_logs(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersLogs>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SortedPageQuery>,
) -> ApiResult<Envelope> {
    service::lookup(&state, &caller, &id, Level::Read)?;
    let page = PageRequest::from_query(q.page, q.limit, 20)?;
    let mut logs = state
        .store
        .owned(&model::STATUS_LOGS_BY_CONTAINER, &id, &STATUS_LOGS)?
        .into_iter()
        .map(|l| {
            let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.remove("created_at");
            }
            v
        })
        .collect::<Vec<_>>();
    let key = q.sort_by.as_deref().unwrap_or("transition_time");
    if !["transition_time", "created_at", "to_status", "from_status"].contains(&key) {
        return Err(ApiError::field(
            "sort_by",
            "must be one of transition_time, created_at, to_status, from_status",
        ));
    }
    // A transition's creation is its transition time.
    let key = if key == "created_at" {
        "transition_time"
    } else {
        key
    };
    let desc = match q.sort_order.as_deref().unwrap_or("desc") {
        "asc" => false,
        "desc" => true,
        _ => return Err(ApiError::field("sort_order", "must be asc or desc")),
    };
    // Ids sort by time too, which orders transitions within one millisecond.
    logs.sort_by(|a, b| {
        let o = a[key]
            .as_str()
            .unwrap_or_default()
            .cmp(b[key].as_str().unwrap_or_default())
            .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let total = logs.len() as u64;
    Ok(ok(
        "Container status logs",
        json!({"logs": page.slice(logs), "pagination": Pagination::new(page, total)}),
    ))
}

/// `env.list`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/env", tag = "env", operation_id = "env.list",
    responses((status = 200, description = "The variables"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn env_list(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersRead>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Environment variables",
        env::list(&state, &caller, &id)?,
    ))
}

fn env_message(synced: bool) -> &'static str {
    if synced {
        "Environment variables saved; they apply when the container starts"
    } else {
        "Environment variables saved; they apply at the next start (restart the container)"
    }
}

/// `env.bulkSet`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/env", tag = "env", operation_id = "env.bulkSet",
    request_body = Object,
    responses((status = 200, description = "The variables; `synced` is false until the next start"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn env_bulk_set(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Envelope> {
    let (data, synced) = env::bulk_set(&state, &caller, &id, body).await?;
    Ok(ok(env_message(synced), data))
}

/// `env.set`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/env/{key}", tag = "env", operation_id = "env.set",
    request_body = env::SetEnv,
    responses((status = 200, description = "The variables; `synced` is false until the next start"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn env_set(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<env::SetEnv>,
) -> ApiResult<Envelope> {
    let (data, synced) = env::set(&state, &caller, &id, &key, body.value).await?;
    Ok(ok(env_message(synced), data))
}

/// `env.delete`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/env/{key}", tag = "env", operation_id = "env.delete",
    responses((status = 200, description = "The remaining variables"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn env_delete(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersUpdate>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    let (data, synced) = env::delete(&state, &caller, &id, &key).await?;
    Ok(ok(env_message(synced), data))
}

/// `firewall.list`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/firewall/rules", tag = "firewall", operation_id = "firewall.list",
    responses((status = 200, description = "Ingress and egress rules"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn firewall_list(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok("Firewall rules", firewall::list(&state, &caller, &id)?))
}

/// `firewall.reset`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/firewall/reset", tag = "firewall", operation_id = "firewall.reset",
    responses((status = 200, description = "No rules left"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn firewall_reset(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Firewall reset",
        firewall::reset(&state, &caller, &id).await?,
    ))
}

async fn add_rule(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    body: RuleInput,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Firewall rule added",
        firewall::add(state, caller, id, dir, body).await?,
    ))
}

async fn toggle_rule(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    body: ToggleInput,
) -> ApiResult<Envelope> {
    let (new_state, filter) = body.split();
    Ok(ok(
        "Firewall rule updated",
        firewall::toggle(state, caller, id, dir, new_state, filter).await?,
    ))
}

async fn remove_rule(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    body: RuleFilter,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Firewall rules removed",
        firewall::remove(state, caller, id, dir, body).await?,
    ))
}

/// `firewall.addIngressRule`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/firewall/ingress", tag = "firewall", operation_id = "firewall.addIngressRule",
    request_body = RuleInput,
    responses((status = 200, description = "All rules, or the existing duplicate"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_ingress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleInput>,
) -> ApiResult<Envelope> {
    add_rule(&state, &caller, &id, Direction::Ingress, body).await
}

/// `firewall.addEgressRule`: enforced in the container's network at once.
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/firewall/egress", tag = "firewall", operation_id = "firewall.addEgressRule",
    request_body = RuleInput,
    responses((status = 200, description = "All rules, or the existing duplicate"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_egress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleInput>,
) -> ApiResult<Envelope> {
    add_rule(&state, &caller, &id, Direction::Egress, body).await
}

/// `firewall.toggleIngressRule`
#[utoipa::path(
    patch, path = "/api/v1/containers/{id}/firewall/ingress", tag = "firewall", operation_id = "firewall.toggleIngressRule",
    request_body = ToggleInput,
    responses((status = 200, description = "The toggled rule"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_ingress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ToggleInput>,
) -> ApiResult<Envelope> {
    toggle_rule(&state, &caller, &id, Direction::Ingress, body).await
}

/// `firewall.toggleEgressRule`
#[utoipa::path(
    patch, path = "/api/v1/containers/{id}/firewall/egress", tag = "firewall", operation_id = "firewall.toggleEgressRule",
    request_body = ToggleInput,
    responses((status = 200, description = "The toggled rule"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_egress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ToggleInput>,
) -> ApiResult<Envelope> {
    toggle_rule(&state, &caller, &id, Direction::Egress, body).await
}

/// `firewall.removeIngressRule`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/firewall/ingress", tag = "firewall", operation_id = "firewall.removeIngressRule",
    request_body = RuleFilter,
    responses((status = 200, description = "The removed rules"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_ingress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleFilter>,
) -> ApiResult<Envelope> {
    remove_rule(&state, &caller, &id, Direction::Ingress, body).await
}

/// `firewall.removeEgressRule`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/firewall/egress", tag = "firewall", operation_id = "firewall.removeEgressRule",
    request_body = RuleFilter,
    responses((status = 200, description = "The removed rules"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_egress(
    State(state): State<AppState>,
    caller: Authed<perm::Firewalls>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleFilter>,
) -> ApiResult<Envelope> {
    remove_rule(&state, &caller, &id, Direction::Egress, body).await
}

/// `containers.getNetworkConfig`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/network", tag = "containers", operation_id = "containers.getNetworkConfig",
    responses((status = 200, description = "The network mode"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn network_get(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersNetworking>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Network configuration",
        network::get(&state, &caller, &id)?,
    ))
}

/// `containers.updateNetworkConfig`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/network", tag = "containers", operation_id = "containers.updateNetworkConfig",
    request_body = NetworkInput,
    responses((status = 200, description = "The stored network mode"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn network_update(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersNetworking>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NetworkInput>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Network configuration saved",
        network::update(&state, &caller, &id, body).await?,
    ))
}

/// `containers.removeNetworkConfig`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/network", tag = "containers", operation_id = "containers.removeNetworkConfig",
    responses((status = 200, description = "Removed"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn network_remove(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersNetworking>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    network::remove(&state, &caller, &id).await?;
    Ok(ok("Network configuration removed", Value::Null))
}

/// `containers.startNetwork`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/network/start", tag = "containers", operation_id = "containers.startNetwork",
    responses((status = 200, description = "Applied"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn network_start(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersNetworking>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Network started",
        network::set_running(&state, &caller, &id, true).await?,
    ))
}

/// `containers.stopNetwork`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/network/stop", tag = "containers", operation_id = "containers.stopNetwork",
    responses((status = 200, description = "Lifted"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn network_stop(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersNetworking>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Network stopped",
        network::set_running(&state, &caller, &id, false).await?,
    ))
}

/// `containers.listSnapshots`
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/snapshots", tag = "containers", operation_id = "containers.listSnapshots",
    responses((status = 200, description = "The snapshots"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshots_list(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersSnapshots>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Snapshots",
        snapshots::list(&state, &caller, &id).await?,
    ))
}

/// `containers.createSnapshot`
#[utoipa::path(
    post, path = "/api/v1/containers/{id}/snapshots", tag = "containers", operation_id = "containers.createSnapshot",
    request_body = CreateSnapshot,
    responses((status = 200, description = "The new snapshot"), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshots_create(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersSnapshots>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateSnapshot>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Snapshot created",
        snapshots::create(&state, &caller, &id, body).await?,
    ))
}

/// `containers.restoreSnapshot`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/snapshots/{name}", tag = "containers", operation_id = "containers.restoreSnapshot",
    responses((status = 200, description = "Restored"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshots_restore(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersSnapshots>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Snapshot restored",
        snapshots::restore(&state, &caller, &id, &name).await?,
    ))
}

/// `containers.deleteSnapshot`
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/snapshots/{name}", tag = "containers", operation_id = "containers.deleteSnapshot",
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshots_delete(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersSnapshots>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Snapshot deleted",
        snapshots::delete(&state, &caller, &id, &name).await?,
    ))
}

/// `containers.updateSnapshotAlias`
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/snapshots/{name}/alias", tag = "containers", operation_id = "containers.updateSnapshotAlias",
    request_body = AliasInput,
    responses((status = 200, description = "The snapshot"), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshots_alias(
    State(state): State<AppState>,
    caller: Authed<perm::ContainersSnapshots>,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<AliasInput>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Snapshot alias updated",
        snapshots::set_alias(&state, &caller, &id, &name, body.alias).await?,
    ))
}
