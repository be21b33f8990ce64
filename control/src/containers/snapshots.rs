//! Snapshots of a container's writable layer. The runtime keeps the
//! archives; the record keeps what the API adds (alias, expiry, last use).
//! A background job deletes expired snapshots.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Container, SnapshotMeta, CONTAINERS};
use super::service::{lookup, save_status, status_of};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::state::AppState;
use crate::wire::{format_time, now, parse_time, Validator};

/// Snapshots kept per container.
pub const MAX_SNAPSHOTS: usize = 20;

fn unix_to_rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map(format_time)
        .unwrap_or_else(|_| now())
}

fn item(m: &SnapshotMeta) -> Value {
    json!({
        "name": m.name,
        "alias": m.alias,
        "created_at": m.created_at,
        "last_used_at": m.last_used_at,
        "expires_at": m.expires_at,
        "stateful": false,
        "size": m.size,
    })
}

fn check_name(name: &str) -> ApiResult<()> {
    let spec = runtime::ContainerSpec {
        id: name.to_string(),
        ..Default::default()
    };
    if spec.validate().is_err() {
        return Err(ApiError::field(
            "name",
            "must be 1-64 characters of letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// `containers.listSnapshots`: the runtime's archives with the record's extras.
pub async fn list(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    let archives = state.runtime()?.list_snapshots(id).await?;
    let items: Vec<Value> = archives
        .iter()
        .map(|a| {
            let meta = c.snapshots.iter().find(|m| m.name == a.name).cloned();
            item(&meta.unwrap_or(SnapshotMeta {
                name: a.name.clone(),
                alias: None,
                created_at: unix_to_rfc3339(a.created_at),
                last_used_at: None,
                expires_at: None,
                size: a.size,
            }))
        })
        .collect();
    Ok(json!({
        "container_id": c.id,
        "project_id": c.project_id,
        "snapshot_count": items.len(),
        "max_snapshots": MAX_SNAPSHOTS,
        "snapshots": items,
    }))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    pub alias: Option<String>,
    pub expiry: Option<i64>,
}

/// `containers.createSnapshot`
pub async fn create(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: CreateSnapshot,
) -> ApiResult<Value> {
    let mut v = Validator::new();
    if let Some(a) = &body.alias {
        v.length("alias", a, 0, 100);
    }
    if let Some(days) = body.expiry {
        v.check(
            "expiry",
            (1..=3650).contains(&days),
            "must be between 1 and 3650 days",
        );
    }
    v.finish()?;
    let (c, _) = lookup(state, caller, id, Level::Edit)?;
    if c.snapshots.len() >= MAX_SNAPSHOTS {
        return Err(ApiError::conflict(
            "SNAPSHOT_LIMIT",
            format!("a container keeps at most {MAX_SNAPSHOTS} snapshots"),
        ));
    }
    let info = state.runtime()?.create_snapshot(id, None).await?;
    let created_at = unix_to_rfc3339(info.created_at);
    let expires_at = body
        .expiry
        .map(|d| format_time(time::OffsetDateTime::now_utc() + time::Duration::days(d)));
    let meta = SnapshotMeta {
        name: info.name.clone(),
        alias: body.alias.clone().filter(|a| !a.is_empty()),
        created_at,
        last_used_at: None,
        expires_at,
        size: info.size,
    };
    let c = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        c.snapshots.retain(|m| m.name != meta.name);
        c.snapshots.push(meta.clone());
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.snapshot.created", "container", id, &c.user_id).payload(
                json!({"container_id": id, "project_id": c.project_id, "snapshot": meta.name}),
            ),
        )?;
        Ok(c)
    })?;
    Ok(json!({"container_id": c.id, "project_id": c.project_id, "snapshot": item(&meta)}))
}

fn forget(state: &AppState, id: &str, name: &str, event: &'static str) -> ApiResult<Container> {
    Ok(state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        c.snapshots.retain(|m| m.name != name);
        if c.last_used_snapshot.as_deref() == Some(name) {
            c.last_used_snapshot = None;
        }
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new(event, "container", id, &c.user_id)
                .payload(json!({"container_id": id, "project_id": c.project_id, "snapshot": name})),
        )?;
        Ok(c)
    })?)
}

/// `containers.deleteSnapshot`
pub async fn delete(
    state: &AppState,
    caller: &Principal,
    id: &str,
    name: &str,
) -> ApiResult<Value> {
    check_name(name)?;
    lookup(state, caller, id, Level::Edit)?;
    state.runtime()?.delete_snapshot(id, name).await?;
    let c = forget(state, id, name, "container.snapshot.deleted")?;
    Ok(json!({"container_id": c.id, "project_id": c.project_id, "snapshot_name": name}))
}

/// `containers.restoreSnapshot`: the runtime stops the container, swaps the
/// layer, and starts it again if it was running.
pub async fn restore(
    state: &AppState,
    caller: &Principal,
    id: &str,
    name: &str,
) -> ApiResult<Value> {
    check_name(name)?;
    lookup(state, caller, id, Level::Edit)?;
    let rt = state.runtime()?;
    let _guard = state.container_locks.lock(id).await;
    let info = rt.restore_snapshot(id, name).await?;
    if let Ok(ci) = rt.inspect(id).await {
        save_status(
            state,
            id,
            status_of(ci.status),
            caller.user_id(),
            Some(json!({"restored": name})),
        )?;
    }
    crate::proxy::compile::recompile(state, id).await?;
    let at = now();
    let meta = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        let meta = match c.snapshots.iter_mut().find(|m| m.name == name) {
            Some(m) => {
                m.last_used_at = Some(at.clone());
                m.clone()
            }
            None => {
                let m = SnapshotMeta {
                    name: info.name.clone(),
                    alias: None,
                    created_at: unix_to_rfc3339(info.created_at),
                    last_used_at: Some(at.clone()),
                    expires_at: None,
                    size: info.size,
                };
                c.snapshots.push(m.clone());
                m
            }
        };
        c.last_used_snapshot = Some(name.to_string());
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.snapshot.restored", "container", id, &c.user_id)
                .payload(json!({"container_id": id, "project_id": c.project_id, "snapshot": name})),
        )?;
        Ok(meta)
    })?;
    Ok(json!({
        "success": true,
        "message": format!("snapshot {name} restored"),
        "snapshot": item(&meta),
    }))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasInput {
    pub alias: Option<String>,
}

/// `containers.updateSnapshotAlias`: `null` removes the alias.
pub async fn set_alias(
    state: &AppState,
    caller: &Principal,
    id: &str,
    name: &str,
    alias: Option<String>,
) -> ApiResult<Value> {
    check_name(name)?;
    if let Some(a) = &alias {
        if a.chars().count() > 100 {
            return Err(ApiError::field("alias", "at most 100 characters"));
        }
    }
    lookup(state, caller, id, Level::Edit)?;
    let archives = state.runtime()?.list_snapshots(id).await?;
    let archive = archives
        .iter()
        .find(|a| a.name == name)
        .ok_or(ApiError::NotFound("snapshot"))?
        .clone();
    let (c, meta) = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        if !c.snapshots.iter().any(|m| m.name == name) {
            c.snapshots.push(SnapshotMeta {
                name: archive.name.clone(),
                alias: None,
                created_at: unix_to_rfc3339(archive.created_at),
                last_used_at: None,
                expires_at: None,
                size: archive.size,
            });
        }
        let mut meta = None;
        for m in c.snapshots.iter_mut().filter(|m| m.name == name) {
            m.alias = alias.clone().filter(|a| !a.is_empty());
            meta = Some(m.clone());
        }
        let meta = meta.ok_or(ApiError::NotFound("snapshot"))?;
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.snapshot.renamed", "container", id, &c.user_id).payload(
                json!({"container_id": id, "project_id": c.project_id, "snapshot": name, "alias": meta.alias}),
            ),
        )?;
        Ok((c, meta))
    })?;
    Ok(json!({"container_id": c.id, "project_id": c.project_id, "snapshot": item(&meta)}))
}

/// Deletes every snapshot whose expiry has passed.
pub async fn expire(state: &AppState) {
    let Ok(rt) = state.runtime() else {
        return;
    };
    let Ok(containers) = state.store.scan(&CONTAINERS) else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    for c in containers {
        for m in &c.snapshots {
            let expired = m
                .expires_at
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|t| t <= now);
            if !expired {
                continue;
            }
            match rt.delete_snapshot(&c.id, &m.name).await {
                Ok(()) | Err(runtime::RuntimeError::SnapshotNotFound(_)) => {
                    if let Err(e) = forget(state, &c.id, &m.name, "container.snapshot.deleted") {
                        tracing::warn!(container = %c.id, snapshot = %m.name, error = %e, "cannot forget expired snapshot");
                    }
                }
                Err(e) => {
                    tracing::warn!(container = %c.id, snapshot = %m.name, error = %e, "cannot delete expired snapshot")
                }
            }
        }
    }
}
