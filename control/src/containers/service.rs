//! Container rules: creation with its checks, the lifecycle on the runtime,
//! updates, copies, and the view clients get.
//!
//! Runtime calls take up to seconds, so no store transaction is ever held
//! across one: a change is recorded in a short transaction before the call
//! (`creating`, `copying`, `deleting`) and another after it, from the state
//! the runtime reports. Calls on one container are serialized by the runtime.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{self, status, Container, StatusLog, CONTAINERS, STATUS_LOGS};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::{Level, Project, PROJECTS};
use crate::projects::service::{access, normalize_color, random_color, Access};
use crate::servers::model::{node_server_id, Server, SERVERS};
use crate::state::AppState;
use crate::store::{StoreResult, Tx};
use crate::wire::{check_id, is_id, new_id, now, parse_time, Validator};

/// The container `id` with the caller's access to its project; 404 for
/// anyone without access, 403 for members below `needed`.
pub fn lookup(
    state: &AppState,
    caller: &Principal,
    id: &str,
    needed: Level,
) -> ApiResult<(Container, Access)> {
    check_id("id", id)?;
    let c = state
        .store
        .get(&CONTAINERS, id)?
        .ok_or(ApiError::NotFound("container"))?;
    let access = access(&state.store, caller.user_id(), &c.project_id).map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("container"),
        other => other,
    })?;
    Ok((c, access.require(needed)?))
}

fn event_for(to: &str) -> Option<&'static str> {
    Some(match to {
        status::CREATING => "container.creating",
        status::RUNNING => "container.running",
        status::STOPPED => "container.stopped",
        status::FAILED => "container.failed",
        status::DELETING => "container.deleting",
        "deleted" => "container.deleted",
        _ => return None,
    })
}

/// Records a status change of `c` (already loaded in `tx`): the record, a
/// status-log row and the matching `container.*` event.
pub fn transition(
    tx: &Tx<'_>,
    c: &mut Container,
    to: &str,
    triggered_by: &str,
    metadata: Option<Value>,
) -> StoreResult<()> {
    // Strictly after the previous transition, so the log orders by time.
    let prev = c.status_changed_at.as_deref().and_then(parse_time);
    let mut t = time::OffsetDateTime::now_utc();
    if let Some(p) = prev {
        if t <= p {
            t = p + time::Duration::milliseconds(1);
        }
    }
    let at = crate::wire::format_time(t);
    let from = (!c.status.is_empty() && c.status != to).then(|| c.status.clone());
    let duration_ms = c
        .status_changed_at
        .as_deref()
        .and_then(parse_time)
        .zip(parse_time(&at))
        .map(|(a, b)| (b - a).whole_milliseconds().max(0) as u64);
    let log = StatusLog {
        id: new_id(),
        container_id: c.id.clone(),
        from_status: if c.status.is_empty() {
            None
        } else {
            Some(c.status.clone())
        },
        to_status: to.to_string(),
        transition_time: at.clone(),
        duration_ms,
        triggered_by: triggered_by.to_string(),
        metadata: metadata.clone(),
        created_at: at.clone(),
    };
    tx.put(&STATUS_LOGS, &log.id, &log)?;
    tx.add_multi(&model::STATUS_LOGS_BY_CONTAINER, &c.id, &log.id)?;
    if to == status::RUNNING && from.as_deref() != Some(status::PAUSED) {
        c.started_at = Some(at.clone());
    }
    c.status = to.to_string();
    c.status_changed_at = Some(at.clone());
    c.updated_at = at;
    if let Some(event) = event_for(to) {
        let mut payload = json!({
            "container_id": c.id,
            "project_id": c.project_id,
            "name": c.name,
            "from_status": from,
            "to_status": to,
        });
        if let Some(m) = metadata {
            payload["metadata"] = m;
        }
        record(
            tx,
            NewEvent::new(event, "container", &c.id, &c.user_id).payload(payload),
        )?;
    }
    Ok(())
}

/// Records the status the runtime reported after an operation. A container
/// deleted meanwhile stays deleted.
pub fn save_status(
    state: &AppState,
    id: &str,
    to: &str,
    triggered_by: &str,
    metadata: Option<Value>,
) -> ApiResult<Option<Container>> {
    Ok(state.store.tx(|tx| {
        let Some(mut c) = tx.get(&CONTAINERS, id)? else {
            return Ok(None);
        };
        if c.status != to {
            transition(tx, &mut c, to, triggered_by, metadata.clone())?;
        }
        tx.put(&CONTAINERS, id, &c)?;
        Ok(Some(c))
    })?)
}

pub fn status_of(s: runtime::ContainerStatus) -> &'static str {
    match s {
        runtime::ContainerStatus::Running => status::RUNNING,
        runtime::ContainerStatus::Paused => status::PAUSED,
        runtime::ContainerStatus::Stopped => status::STOPPED,
    }
}

/// The runtime spec of a container record: image, env, firewall, network,
/// storage-share mounts.
pub fn spec_of(state: &AppState, c: &Container) -> ApiResult<runtime::ContainerSpec> {
    let (network, dns_servers) = super::network::policy_of(c);
    Ok(runtime::ContainerSpec {
        id: c.id.clone(),
        image: Some(c.container_image.clone()),
        env: c.environment_vars.clone(),
        egress_rules: super::firewall::egress_of(c)?,
        network,
        dns_servers,
        mounts: super::shares::mounts_for(&state.store, c)?,
        ..Default::default()
    })
}

/// The spec fields that apply at the next start, for `runtime.update`.
pub fn pending_update(c: &Container) -> runtime::SpecUpdate {
    let (_, dns) = super::network::policy_of(c);
    runtime::SpecUpdate {
        env: Some(c.environment_vars.clone()),
        dns_servers: Some(dns),
        ..Default::default()
    }
}

fn local_server(state: &AppState) -> ApiResult<Option<Server>> {
    Ok(state
        .store
        .get(&SERVERS, &node_server_id(&state.settings.node_name))?)
}

/// `kvm` and its alias `dev_kvm`: equal when both are sent.
fn kvm_choice(kvm: Option<bool>, dev_kvm: Option<bool>) -> ApiResult<bool> {
    match (kvm, dev_kvm) {
        (Some(a), Some(b)) if a != b => Err(ApiError::field("dev_kvm", "must agree with kvm")),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Ok(false),
    }
}

/// KVM passthrough needs /dev/kvm and a rented or dedicated server.
fn check_kvm(server: Option<&Server>) -> ApiResult<()> {
    runtime::require_kvm()?;
    if server.is_none_or(|s| s.is_free_tier) {
        return Err(ApiError::forbidden(
            "KVM_NOT_ALLOWED",
            "KVM passthrough is only available on rented or dedicated servers",
        ));
    }
    Ok(())
}

fn check_name(v: &mut Validator, field: &str, name: &str) {
    v.length(field, name, 3, 100);
    v.check(
        field,
        crate::wire::is_slug(name, &[]),
        "may contain only letters, digits, '-' and '_'",
    );
}

fn random_name() -> String {
    let mut bytes = [0u8; 3];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    format!("container-{}", hex::encode(bytes))
}

fn name_taken(state: &AppState, project_id: &str, name: &str, except: &str) -> ApiResult<bool> {
    Ok(model::in_project(&state.store, project_id)?
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(name) && c.id != except))
}

fn image_of(raw: Option<&str>) -> ApiResult<String> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("busybox");
    Ok(runtime::ImageName::parse(raw)?.canonical())
}

fn check_quota(state: &AppState, project: &Project) -> ApiResult<()> {
    if let Some(max) = project.max_containers {
        if model::in_project(&state.store, &project.id)?.len() as u64 >= u64::from(max) {
            return Err(ApiError::forbidden(
                "PROJECT_CONTAINER_LIMIT",
                format!("the project allows at most {max} containers"),
            ));
        }
    }
    Ok(())
}

fn comment_ok(v: &mut Validator, comment: Option<&str>) {
    if let Some(c) = comment {
        v.length("comment", c, 0, 16000);
    }
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub server_id: String,
    pub name: Option<String>,
    pub color: Option<String>,
    pub container_image: Option<String>,
    pub ai: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub environment_vars: Option<Map<String, Value>>,
    pub ssh_public_key: Option<String>,
    pub comment: Option<String>,
    pub hoody_kit: Option<bool>,
    pub dev_kit: Option<bool>,
    pub kvm: Option<bool>,
    pub dev_kvm: Option<bool>,
    pub autostart: Option<bool>,
    pub ramdisk: Option<bool>,
    pub cache: Option<bool>,
    pub cache_image: Option<bool>,
    pub prespawn: Option<bool>,
    pub bypass_prespawn: Option<bool>,
    pub realm_ids: Option<Vec<String>>,
}

/// `containers.create`: records the container as `creating`, prepares it on
/// the runtime, and starts it when `autostart` (default true) is set.
pub async fn create(
    state: &AppState,
    caller: &Principal,
    project_id: &str,
    body: CreateContainer,
) -> ApiResult<Container> {
    let project = access(&state.store, caller.user_id(), project_id)?
        .require(Level::Edit)?
        .project;
    let mut v = Validator::new();
    let name = match body.name.as_deref() {
        None | Some("rand") => random_name(),
        Some(n) => {
            check_name(&mut v, "name", n);
            n.to_string()
        }
    };
    let color = match body.color.as_deref() {
        Some(c) => normalize_color(c).unwrap_or_else(|| {
            v.fail("color", "must be a hex colour like #RGB or #RRGGBB");
            String::new()
        }),
        None => random_color(),
    };
    comment_ok(&mut v, body.comment.as_deref());
    if !is_id(&body.server_id) {
        v.fail("server_id", "must be a 24-character lowercase hex id");
    }
    for (i, r) in body.realm_ids.iter().flatten().enumerate() {
        if !is_id(r) {
            v.fail(
                &format!("realm_ids[{i}]"),
                "must be a 24-character lowercase hex id",
            );
        }
    }
    let env = super::env::validate_map(&mut v, body.environment_vars.as_ref());
    v.finish()?;
    let container_image = image_of(body.container_image.as_deref())?;
    if body.prespawn == Some(true) {
        return Err(ApiError::forbidden(
            "PRESPAWN_INTERNAL",
            "prespawn containers are provisioned by the system only",
        ));
    }
    let server = state
        .store
        .get(&SERVERS, &body.server_id)?
        .ok_or(ApiError::NotFound("server"))?;
    if local_server(state)?.is_none_or(|s| s.id != server.id) {
        return Err(ApiError::bad_request(
            "SERVER_UNAVAILABLE",
            "this control plane runs containers only on its own node",
        ));
    }
    let kvm = kvm_choice(body.kvm, body.dev_kvm)?;
    if kvm {
        check_kvm(Some(&server))?;
    }
    check_quota(state, &project)?;
    if name_taken(state, project_id, &name, "")? {
        return Err(ApiError::conflict(
            "CONTAINER_NAME_EXISTS",
            "a container with this name exists in the project",
        ));
    }
    let hoody_kit = body.hoody_kit.unwrap_or(false);
    let at = now();
    let mut realm_ids = body.realm_ids.unwrap_or_default();
    if let Some(r) = &caller.realm_id {
        if !realm_ids.contains(r) {
            realm_ids.push(r.clone());
        }
    }
    let mut c = Container {
        id: new_id(),
        user_id: project.user_id.clone(),
        project_id: project.id.clone(),
        server_id: server.id.clone(),
        name,
        color,
        container_image,
        ai: body.ai.unwrap_or(true),
        hoody_kit,
        dev_kit: body.dev_kit.unwrap_or(hoody_kit),
        kvm,
        autostart: body.autostart.unwrap_or(true),
        ramdisk_scope: "container".into(),
        ramdisk: body.ramdisk.unwrap_or(true),
        status: String::new(),
        environment_vars: env,
        volumes: Map::new(),
        ssh_public_key: body.ssh_public_key.filter(|k| !k.trim().is_empty()),
        comment: body.comment,
        source_container_id: None,
        realm_ids,
        created_at: at.clone(),
        updated_at: at,
        status_changed_at: None,
        started_at: None,
        firewall: Default::default(),
        network: None,
        snapshots: Vec::new(),
        last_used_snapshot: None,
    };
    state.store.tx(|tx| {
        let mut c = c.clone();
        transition(tx, &mut c, status::CREATING, caller.user_id(), None)?;
        model::insert(tx, &c)
    })?;
    c.status = status::CREATING.into();
    let rt = state.runtime()?;
    if let Err(err) = rt.create(spec_of(state, &c)?).await {
        // Input the runtime refuses leaves nothing behind; a host failure
        // stays visible as `failed`.
        let err = ApiError::from(err);
        if matches!(err, ApiError::Internal(_) | ApiError::Unavailable { .. }) {
            save_status(
                state,
                &c.id,
                status::FAILED,
                "system",
                Some(json!({"error": err.to_string()})),
            )?;
        } else {
            forget(state, &c)?;
        }
        return Err(err);
    }
    let mut latest = save_status(state, &c.id, status::STOPPED, "system", None)?;
    if c.autostart {
        match rt.start(&c.id).await {
            Ok(info) => {
                latest = save_status(state, &c.id, status_of(info.status), caller.user_id(), None)?
            }
            Err(err) => {
                save_status(
                    state,
                    &c.id,
                    status::FAILED,
                    "system",
                    Some(json!({"error": err.to_string()})),
                )?;
                crate::proxy::compile::recompile(state, &c.id).await?;
                return Err(err.into());
            }
        }
    }
    crate::proxy::compile::recompile(state, &c.id).await?;
    latest.ok_or(ApiError::NotFound("container"))
}

/// Removes a container's records (not its runtime state).
fn forget(state: &AppState, c: &Container) -> ApiResult<()> {
    let logs = state.store.ids(&model::STATUS_LOGS_BY_CONTAINER, &c.id)?;
    state.store.tx(|tx| {
        tx.remove(&CONTAINERS, &c.id)?;
        tx.remove_multi(&model::CONTAINERS_BY_PROJECT, &c.project_id, &c.id)?;
        for l in &logs {
            tx.remove(&STATUS_LOGS, l)?;
            tx.remove_multi(&model::STATUS_LOGS_BY_CONTAINER, &c.id, l)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Stops and removes a container everywhere: `deleting`, the runtime's
/// teardown, then the records (its aliases and proxy document included)
/// with a `container.deleted` event in one transaction, and the removal
/// published to every data plane.
pub async fn destroy(state: &AppState, c: &Container, by: &str) -> ApiResult<()> {
    let _guard = state.container_locks.lock(&c.id).await;
    if state.store.get(&CONTAINERS, &c.id)?.is_none() {
        return Err(ApiError::NotFound("container"));
    }
    save_status(state, &c.id, status::DELETING, by, None)?;
    // A container being deleted serves nothing (503) from now on.
    crate::proxy::compile::recompile(state, &c.id).await?;
    let rt = state.runtime()?;
    match rt.delete(&c.id).await {
        Ok(()) | Err(runtime::RuntimeError::NotFound(_)) => {}
        Err(err) => {
            save_status(
                state,
                &c.id,
                status::FAILED,
                "system",
                Some(json!({"error": err.to_string()})),
            )?;
            crate::proxy::compile::recompile(state, &c.id).await?;
            return Err(err.into());
        }
    }
    super::shares::on_container_deleted(state, &c.id).await?;
    let logs = state.store.ids(&model::STATUS_LOGS_BY_CONTAINER, &c.id)?;
    let aliases = crate::aliases::model::of_container(&state.store, &c.id)?;
    state.store.tx(|tx| {
        let Some(mut cur) = tx.get(&CONTAINERS, &c.id)? else {
            return Ok(());
        };
        crate::aliases::service::on_container_deleted(tx, &aliases)?;
        crate::proxy::documents::on_container_deleted(tx, &c.id)?;
        transition(tx, &mut cur, "deleted", by, None)?;
        tx.remove(&CONTAINERS, &c.id)?;
        tx.remove_multi(&model::CONTAINERS_BY_PROJECT, &c.project_id, &c.id)?;
        for l in &logs {
            tx.remove(&STATUS_LOGS, l)?;
            tx.remove_multi(&model::STATUS_LOGS_BY_CONTAINER, &c.id, l)?;
        }
        Ok(())
    })?;
    state.container_locks.forget(&c.id);
    let removed = crate::proxy::compile::recompile(state, &c.id).await;
    state.compile_locks.forget(&c.id);
    removed
}

/// `containers.delete`
pub async fn delete(state: &AppState, caller: &Principal, id: &str) -> ApiResult<()> {
    let (c, _) = lookup(state, caller, id, Level::Delete)?;
    destroy(state, &c, caller.user_id()).await
}

/// The operations of `containers.manage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
    ForceStop,
    Restart,
    Pause,
    Resume,
}

impl Operation {
    pub fn parse(s: &str) -> ApiResult<Operation> {
        Ok(match s {
            "start" => Operation::Start,
            "stop" => Operation::Stop,
            "force-stop" => Operation::ForceStop,
            "restart" => Operation::Restart,
            "pause" => Operation::Pause,
            "resume" => Operation::Resume,
            _ => {
                return Err(ApiError::field(
                    "operation",
                    "must be one of start, stop, force-stop, restart, pause, resume",
                ))
            }
        })
    }

    /// The token permission each operation needs.
    pub fn permission(self) -> &'static [&'static str] {
        use crate::auth::permission::{self as perm, Permission};
        match self {
            Operation::Start | Operation::Resume => perm::ContainersStart::PATH,
            Operation::Stop | Operation::ForceStop | Operation::Pause => perm::ContainersStop::PATH,
            Operation::Restart => perm::ContainersRestart::PATH,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::ForceStop => "force-stop",
            Operation::Restart => "restart",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
        }
    }
}

/// `containers.manage`: runs one lifecycle operation and records the
/// resulting status.
pub async fn manage(
    state: &AppState,
    caller: &Principal,
    id: &str,
    op: Operation,
) -> ApiResult<Container> {
    if !caller.may(op.permission()) {
        return Err(ApiError::forbidden(
            "INSUFFICIENT_PERMISSIONS",
            format!(
                "this credential lacks the permission {}",
                op.permission().join(".")
            ),
        ));
    }
    lookup(state, caller, id, Level::Edit)?;
    let _guard = state.container_locks.lock(id).await;
    // Re-read under the lock: a delete may have finished meanwhile.
    let c = state
        .store
        .get(&CONTAINERS, id)?
        .ok_or(ApiError::NotFound("container"))?;
    match c.status.as_str() {
        status::CREATING | status::COPYING | status::DELETING => {
            return Err(ApiError::conflict(
                "CONTAINER_BUSY",
                format!("the container is {}", c.status),
            ))
        }
        _ => {}
    }
    let rt = state.runtime()?;
    let result = match op {
        Operation::Start => rt.start(id).await,
        Operation::Stop => rt.stop(id, None).await,
        Operation::ForceStop => rt.force_stop(id).await,
        Operation::Restart => rt.restart(id).await,
        Operation::Pause => rt.pause(id).await,
        Operation::Resume => rt.resume(id).await,
    };
    let info = match result {
        Ok(info) => info,
        Err(err) => {
            // Keep the record in line with the runtime even when the call fails.
            if let Ok(info) = rt.inspect(id).await {
                save_status(state, id, status_of(info.status), "system", None)?;
            }
            crate::proxy::compile::recompile(state, id).await?;
            return Err(err.into());
        }
    };
    let c = save_status(
        state,
        id,
        status_of(info.status),
        caller.user_id(),
        Some(json!({"operation": op.name()})),
    )?
    .ok_or(ApiError::NotFound("container"))?;
    crate::proxy::compile::recompile(state, id).await?;
    Ok(c)
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContainer {
    pub name: Option<String>,
    pub color: Option<String>,
    pub ai: Option<bool>,
    pub autostart: Option<bool>,
    pub ramdisk_scope: Option<String>,
    pub ramdisk: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub environment_vars: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub ssh_public_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Option<String>>,
    pub realm_ids: Option<Vec<String>>,
}

/// `containers.update`: settings of the record; new environment variables
/// reach the runtime for the next start.
pub async fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: UpdateContainer,
) -> ApiResult<Container> {
    let (c, _) = lookup(state, caller, id, Level::Edit)?;
    let mut v = Validator::new();
    if let Some(n) = &body.name {
        v.length("name", n, 1, 100);
        v.check(
            "name",
            crate::wire::is_slug(n, &[]),
            "may contain only letters, digits, '-' and '_'",
        );
    }
    let color = match body.color.as_deref() {
        Some(col) => match normalize_color(col) {
            Some(col) => Some(col),
            None => {
                v.fail("color", "must be a hex colour like #RGB or #RRGGBB");
                None
            }
        },
        None => None,
    };
    if let Some(scope) = &body.ramdisk_scope {
        v.check(
            "ramdisk_scope",
            scope == "container" || scope == "project",
            "must be container or project",
        );
    }
    comment_ok(&mut v, body.comment.as_ref().and_then(|c| c.as_deref()));
    let env = body
        .environment_vars
        .as_ref()
        .map(|m| super::env::validate_map(&mut v, Some(m)));
    v.finish()?;
    if body.realm_ids.is_some() && caller.token().is_some_and(|t| !t.realm_ids.is_empty()) {
        return Err(ApiError::forbidden(
            "REALM_RESTRICTED_TOKEN",
            "a realm-restricted token cannot change realm membership",
        ));
    }
    if let Some(n) = &body.name {
        if name_taken(state, &c.project_id, n, id)? {
            return Err(ApiError::conflict(
                "CONTAINER_NAME_EXISTS",
                "a container with this name exists in the project",
            ));
        }
    }
    let updated = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        let mut events: Vec<(&'static str, Value)> = Vec::new();
        if let Some(n) = &body.name {
            if *n != c.name {
                events.push((
                    "container.renamed",
                    json!({"old_name": c.name, "new_name": n}),
                ));
                c.name = n.clone();
            }
        }
        if let Some(col) = &color {
            c.color = col.clone();
        }
        if let Some(a) = body.ai {
            c.ai = a;
        }
        if let Some(a) = body.autostart {
            if a != c.autostart {
                let e = if a {
                    "container.autostart_enabled"
                } else {
                    "container.autostart_disabled"
                };
                events.push((e, json!({})));
            }
            c.autostart = a;
        }
        if let Some(s) = &body.ramdisk_scope {
            c.ramdisk_scope = s.clone();
        }
        if let Some(r) = body.ramdisk {
            c.ramdisk = r;
        }
        if let Some(e) = &env {
            c.environment_vars = e.clone();
            events.push((
                "container.resource_updated",
                json!({"environment_vars": e.keys().collect::<Vec<_>>()}),
            ));
        }
        if let Some(k) = &body.ssh_public_key {
            let k = k.clone().filter(|k| !k.trim().is_empty());
            if k != c.ssh_public_key {
                let e = if k.is_some() {
                    "container.ssh_key.added"
                } else {
                    "container.ssh_key.removed"
                };
                events.push((e, json!({})));
            }
            c.ssh_public_key = k;
        }
        if let Some(cm) = &body.comment {
            c.comment = cm.clone();
        }
        if let Some(r) = &body.realm_ids {
            c.realm_ids = r.clone();
        }
        c.updated_at = now();
        tx.put(&CONTAINERS, id, &c)?;
        if events.is_empty() {
            events.push(("container.resource_updated", json!({})));
        }
        for (e, mut payload) in events {
            payload["container_id"] = json!(c.id);
            payload["project_id"] = json!(c.project_id);
            record(
                tx,
                NewEvent::new(e, "container", &c.id, &c.user_id).payload(payload),
            )?;
        }
        Ok(c)
    })?;
    if env.is_some() {
        state
            .runtime()?
            .update(id, pending_update(&updated))
            .await?;
    }
    Ok(updated)
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyContainer {
    pub target_project_id: String,
    pub target_server_id: Option<String>,
    pub name: Option<String>,
    pub ssh_public_key: Option<String>,
    pub source_snapshot: Option<String>,
    pub copy_firewall_rules: Option<bool>,
    pub copy_network_rules: Option<bool>,
    pub kvm: Option<bool>,
    pub dev_kvm: Option<bool>,
}

/// `containers.copy`: a new stopped container in the target project with a
/// copy of the source's root filesystem changes, as they are now or as a
/// snapshot (`source_snapshot`, by name or alias) holds them.
pub async fn copy(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: CopyContainer,
) -> ApiResult<Container> {
    let (src, _) = lookup(state, caller, id, Level::Read)?;
    let mut v = Validator::new();
    if !is_id(&body.target_project_id) {
        v.fail(
            "target_project_id",
            "must be a 24-character lowercase hex id",
        );
    }
    if let Some(s) = &body.target_server_id {
        if !is_id(s) {
            v.fail(
                "target_server_id",
                "must be a 24-character lowercase hex id",
            );
        }
    }
    if let Some(n) = &body.name {
        check_name(&mut v, "name", n);
    }
    if let Some(s) = &body.source_snapshot {
        v.check(
            "source_snapshot",
            !s.is_empty() && crate::wire::is_slug(s, &[]),
            "may contain only letters, digits, '-' and '_'",
        );
    }
    v.finish()?;
    let project = access(&state.store, caller.user_id(), &body.target_project_id)?
        .require(Level::Edit)?
        .project;
    if let Some(s) = &body.target_server_id {
        if *s != src.server_id {
            return Err(ApiError::bad_request(
                "SERVER_UNAVAILABLE",
                "copies are made on the source container's server",
            ));
        }
    }
    let snapshot = match &body.source_snapshot {
        Some(s) => Some(snapshot_named(state, &src, s).await?),
        None => None,
    };
    let kvm = kvm_choice(body.kvm, body.dev_kvm)?;
    if kvm {
        check_kvm(local_server(state)?.as_ref())?;
    }
    check_quota(state, &project)?;
    let name = body.name.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 2];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        let base: String = src.name.chars().take(90).collect();
        format!("{base}-copy-{}", hex::encode(bytes))
    });
    if name_taken(state, &project.id, &name, "")? {
        return Err(ApiError::conflict(
            "CONTAINER_NAME_EXISTS",
            "a container with this name exists in the project",
        ));
    }
    let at = now();
    let mut c = src.clone();
    c.id = new_id();
    c.user_id = project.user_id.clone();
    c.project_id = project.id.clone();
    c.name = name;
    c.kvm = kvm;
    c.status = String::new();
    c.ssh_public_key = body.ssh_public_key.clone().filter(|k| !k.trim().is_empty());
    c.source_container_id = Some(src.id.clone());
    c.created_at = at.clone();
    c.updated_at = at;
    c.status_changed_at = None;
    c.started_at = None;
    c.snapshots = Vec::new();
    c.last_used_snapshot = None;
    c.volumes = Map::new();
    if !body.copy_firewall_rules.unwrap_or(false) {
        c.firewall = Default::default();
    }
    if !body.copy_network_rules.unwrap_or(false) {
        c.network = None;
    }
    state.store.tx(|tx| {
        let mut c = c.clone();
        transition(
            tx,
            &mut c,
            status::COPYING,
            caller.user_id(),
            Some(json!({"source_container_id": src.id, "source_snapshot": snapshot})),
        )?;
        model::insert(tx, &c)
    })?;
    c.status = status::COPYING.into();
    let rt = state.runtime()?;
    let spec = spec_of(state, &c)?;
    let copied = match &snapshot {
        Some(name) => rt.copy_from_snapshot(&src.id, name, spec).await,
        None => rt.copy(&src.id, spec).await,
    };
    if let Err(err) = copied {
        let err = ApiError::from(err);
        if matches!(err, ApiError::Internal(_)) {
            save_status(
                state,
                &c.id,
                status::FAILED,
                "system",
                Some(json!({"error": err.to_string()})),
            )?;
        } else {
            forget(state, &c)?;
        }
        return Err(err);
    }
    let copied = save_status(state, &c.id, status::STOPPED, "system", None)?
        .ok_or(ApiError::NotFound("container"))?;
    crate::proxy::compile::recompile(state, &c.id).await?;
    Ok(copied)
}

/// The snapshot of `src` that `source_snapshot` names: its name, or the
/// alias given to it.
async fn snapshot_named(state: &AppState, src: &Container, wanted: &str) -> ApiResult<String> {
    let archives = state.runtime()?.list_snapshots(&src.id).await?;
    if archives.iter().any(|a| a.name == wanted) {
        return Ok(wanted.to_string());
    }
    src.snapshots
        .iter()
        .find(|m| m.alias.as_deref() == Some(wanted) && archives.iter().any(|a| a.name == m.name))
        .map(|m| m.name.clone())
        .ok_or(ApiError::NotFound("snapshot"))
}

/// `containers.sync`: copies the source's filesystem changes over this copy again.
pub async fn sync(
    state: &AppState,
    caller: &Principal,
    id: &str,
) -> ApiResult<(Container, String)> {
    let (c, _) = lookup(state, caller, id, Level::Edit)?;
    let source = c.source_container_id.clone().ok_or_else(|| {
        ApiError::bad_request("NOT_A_COPY", "this container was not copied from another")
    })?;
    lookup(state, caller, &source, Level::Read).map_err(|_| {
        ApiError::bad_request(
            "SOURCE_UNAVAILABLE",
            "the source container no longer exists",
        )
    })?;
    let _guard = state.container_locks.lock(id).await;
    let info = state.runtime()?.sync(&source, id).await?;
    let c = save_status(
        state,
        id,
        status_of(info.status),
        caller.user_id(),
        Some(json!({"synced_from": source})),
    )?
    .ok_or(ApiError::NotFound("container"))?;
    crate::proxy::compile::recompile(state, id).await?;
    Ok((c, source))
}

/// `containers.setContainerKvm`: only on a stopped container.
pub fn set_kvm(
    state: &AppState,
    caller: &Principal,
    id: &str,
    kvm: Option<bool>,
    dev_kvm: Option<bool>,
) -> ApiResult<Container> {
    if kvm.is_none() && dev_kvm.is_none() {
        return Err(ApiError::field("kvm", "is required"));
    }
    let want = kvm_choice(kvm, dev_kvm)?;
    let (c, _) = lookup(state, caller, id, Level::Edit)?;
    if want {
        check_kvm(local_server(state)?.as_ref())?;
    }
    if c.status != status::STOPPED {
        return Err(ApiError::conflict(
            "CONTAINER_NOT_STOPPED",
            "stop the container before changing KVM passthrough",
        ));
    }
    Ok(state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        c.kvm = want;
        c.updated_at = now();
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.resource_updated", "container", id, &c.user_id)
                .payload(json!({"container_id": id, "project_id": c.project_id, "kvm": want})),
        )?;
        Ok(c)
    })?)
}

/// Seconds a container claim stays valid.
pub const CLAIM_TTL_SECS: i64 = 3600;

/// `containers.authorize`: a claim signed with the control plane's Ed25519
/// key that the data plane accepts as the owner's access to the container.
pub fn authorize(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    let iat = crate::wire::unix_now();
    let claim = state.keys.sign_claim(&json!({
        "container_id": c.id,
        "project_id": c.project_id,
        "user_id": caller.user_id(),
        "iat": iat,
        "exp": iat + CLAIM_TTL_SECS,
    }));
    Ok(json!({
        "container_claim": claim,
        "expires_in": CLAIM_TTL_SECS,
        "container_id": c.id,
        "project_id": c.project_id,
    }))
}

/// The contract's container object.
pub fn view(state: &AppState, c: &Container) -> ApiResult<Value> {
    let project = state.store.get(&PROJECTS, &c.project_id)?;
    let server = state.store.get(&SERVERS, &c.server_id)?;
    let mut v = serde_json::to_value(c).map_err(ApiError::internal)?;
    if let Value::Object(m) = &mut v {
        for internal in [
            "user_id",
            "status_changed_at",
            "started_at",
            "firewall",
            "network",
            "snapshots",
        ] {
            m.remove(internal);
        }
    }
    v["project_alias"] = json!(project.as_ref().map(|p| &p.alias));
    v["server_name"] = json!(server.as_ref().map(|s| &s.name));
    v["server"] = match &server {
        Some(s) => json!({
            "name": s.name,
            "country": s.country,
            "city": s.city,
            "region": s.region,
            "datacenter": s.datacenter,
            "is_free": s.is_free_tier,
            "specs": null,
            "expires_at": null,
        }),
        None => Value::Null,
    };
    v["ssh_hostname"] = Value::Null;
    v["prespawn"] = json!(false);
    v["is_default"] = json!(false);
    v["pool_id"] = Value::Null;
    v["snapshot_count"] = json!(c.snapshots.len());
    v["server_expired"] = json!(false);
    v["server_expired_at"] = Value::Null;
    v["server_expired_reason"] = Value::Null;
    v["runtime_info"] = Value::Null;
    v["has_proxy_domains"] = json!(false);
    v["proxy_domains_count"] = json!(0);
    v["has_proxy_permissions"] = json!(false);
    v["proxy_permissions_scope"] = json!("none");
    Ok(v)
}

/// Environment variables as the API shows them.
pub fn env_view(env: &BTreeMap<String, String>) -> Value {
    json!(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_the_contract_names_only() {
        for name in ["start", "stop", "force-stop", "restart", "pause", "resume"] {
            assert_eq!(Operation::parse(name).unwrap().name(), name);
        }
        assert!(Operation::parse("kill").is_err());
        assert!(Operation::parse("force_stop").is_err());
    }

    #[test]
    fn kvm_alias_must_agree() {
        assert!(kvm_choice(Some(true), Some(false)).is_err());
        assert!(kvm_choice(None, Some(true)).unwrap());
        assert!(!kvm_choice(None, None).unwrap());
    }

    #[test]
    fn image_shorthands_resolve_and_unknown_images_name_the_field() {
        assert_eq!(image_of(None).unwrap(), "busybox");
        assert_eq!(image_of(Some("debian-12")).unwrap(), "debian/12");
        match image_of(Some("windows-95")) {
            Err(ApiError::Validation { details, .. }) => {
                assert!(details.contains_key("container_image"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unique_ids_make_valid_runtime_ids() {
        let id = new_id();
        assert!(check_id("id", &id).is_ok());
        assert!(runtime::ContainerSpec {
            id,
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}
