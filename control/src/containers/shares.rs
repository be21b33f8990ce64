//! `storageShares.*`: a container shares one of its directories with another
//! container, or with every container of a project, read-only or read-write.
//!
//! The files live in a host directory the runtime keeps for the source
//! container (`Runtime::export_dir`). The runtime bind-mounts it at the
//! shared path into the source and under [`TARGET_ROOT`] into each target
//! when they start; the control plane only hands it mount specs. A share
//! change therefore reaches a container at its next start. While a path is
//! shared, the source sees the share's directory there instead of what its
//! own filesystem held at that path.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{
    self, Container, MountOverride, StorageShare, CONTAINERS, SHARES, SHARES_BY_SOURCE,
    SHARES_BY_TARGET,
};
use super::service::lookup;
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::projects::service::{access, in_realm, reachable};
use crate::state::AppState;
use crate::store::{Store, StoreResult, Tx};
use crate::wire::{check_id, is_id, new_id, now, unix_now, Validator};

/// Where targets see incoming shares: `<TARGET_ROOT>/<share id>`.
pub const TARGET_ROOT: &str = "/mnt/shares";
/// Shares one container may offer.
pub const MAX_SHARES_PER_CONTAINER: usize = 50;
/// When `storage.share.expiring_soon` is recorded.
const EXPIRY_WARNING_SECS: i64 = 24 * 3600;
/// Paths of the container's system that cannot be shared.
const SYSTEM_PATHS: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/run", "/var/run"];

/// Where a target container sees the share.
pub fn mount_path(share: &StorageShare) -> String {
    format!("{TARGET_ROOT}/{}", share.id)
}

fn expired(s: &StorageShare, now: i64) -> bool {
    s.expires_at.is_some_and(|e| e <= now)
}

/// The target's own answer to the share, if it gave one.
fn override_of<'a>(s: &'a StorageShare, container_id: &str) -> Option<&'a MountOverride> {
    s.overrides.iter().find(|o| o.container_id == container_id)
}

/// Whether container `c` receives share `s` (not whether it is mounted).
fn targets(s: &StorageShare, c: &Container) -> bool {
    s.source_container_id != c.id
        && (s.target_container_id.as_deref() == Some(c.id.as_str())
            || s.target_project_id.as_deref() == Some(c.project_id.as_str()))
}

fn mounted_in(s: &StorageShare, c: &Container, now: i64) -> bool {
    targets(s, c) && s.enabled && !expired(s, now) && override_of(s, &c.id).is_none_or(|o| o.mount)
}

/// Shares container `c` receives, directly or through its project.
fn incoming(store: &Store, c: &Container) -> StoreResult<Vec<StorageShare>> {
    let mut out = store.owned(&SHARES_BY_TARGET, &c.id, &SHARES)?;
    out.extend(store.owned(&SHARES_BY_TARGET, &c.project_id, &SHARES)?);
    out.retain(|s| targets(s, c));
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The bind mounts container `c` gets at start: each path it shares (once,
/// read-write) and each incoming share it has not refused.
pub fn mounts_for(store: &Store, c: &Container) -> ApiResult<Vec<runtime::BindMount>> {
    let now = unix_now();
    let mut out = Vec::new();
    let mut exported = BTreeSet::new();
    for s in store.owned(&SHARES_BY_SOURCE, &c.id, &SHARES)? {
        if exported.insert(s.source_path.clone()) {
            out.push(runtime::BindMount {
                source: s.export_path.clone().into(),
                target: s.source_path.clone(),
                read_only: false,
            });
        }
    }
    for s in incoming(store, c)? {
        if mounted_in(&s, c, now) {
            out.push(runtime::BindMount {
                source: s.export_path.clone().into(),
                target: mount_path(&s),
                read_only: s.mode == "readonly",
            });
        }
    }
    Ok(out)
}

/// The containers whose mounts depend on `s`.
fn affected(store: &Store, s: &StorageShare) -> StoreResult<Vec<String>> {
    let mut ids = vec![s.source_container_id.clone()];
    if let Some(t) = &s.target_container_id {
        ids.push(t.clone());
    }
    if let Some(p) = &s.target_project_id {
        ids.extend(model::in_project(store, p)?.into_iter().map(|c| c.id));
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Hands the current mounts of each container to the runtime (effective at
/// its next start). Returns the first failure's message; containers the
/// runtime does not know (yet, or any more) are skipped.
async fn apply(state: &AppState, ids: &[String]) -> ApiResult<Option<String>> {
    let rt = state.runtime()?;
    let mut failure = None;
    for id in ids {
        let Some(c) = state.store.get(&CONTAINERS, id)? else {
            continue;
        };
        let update = runtime::SpecUpdate {
            mounts: Some(mounts_for(&state.store, &c)?),
            ..Default::default()
        };
        match rt.update(id, update).await {
            Ok(_) | Err(runtime::RuntimeError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot apply storage shares");
                failure.get_or_insert_with(|| format!("container {id}: {e}"));
            }
        }
    }
    Ok(failure)
}

/// Applies a share's mounts and records whether that worked in its status.
async fn apply_share(state: &AppState, share: StorageShare) -> ApiResult<StorageShare> {
    let ids = affected(&state.store, &share)?;
    let failure = apply(state, &ids).await?;
    let status = if failure.is_some() {
        "failed"
    } else {
        "active"
    };
    if share.status == status && share.status_message == failure {
        return Ok(share);
    }
    let updated = state.store.tx(|tx| {
        let Some(mut s) = tx.get(&SHARES, &share.id)? else {
            return Ok(share.clone());
        };
        s.status = status.to_string();
        s.status_message = failure.clone();
        tx.put(&SHARES, &s.id, &s)?;
        Ok(s)
    })?;
    Ok(updated)
}

/// A share path cleaned up: `//`, `.` and a trailing `/` dropped.
pub fn normalize_path(raw: &str) -> Result<String, &'static str> {
    if !raw.starts_with('/') {
        return Err("must be an absolute path");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.');
    if !raw.chars().all(allowed) {
        return Err("may contain only letters, digits, '/', '-', '_' and '.'");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain '..'"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("cannot share the root directory");
    }
    let path = format!("/{}", parts.join("/"));
    let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
    if SYSTEM_PATHS.iter().any(|p| under(p)) {
        return Err("system directories cannot be shared");
    }
    if under(TARGET_ROOT) {
        return Err("incoming shares cannot be shared again");
    }
    Ok(path)
}

fn check_tag(v: &mut Validator, field: &str, value: Option<&str>) {
    let Some(x) = value else { return };
    let ok = (3..=63).contains(&x.len())
        && x.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && x.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && x.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    v.check(
        field,
        ok,
        "must be 3-63 characters of a-z, 0-9, '-' and '_', starting and ending with a letter or digit",
    );
}

fn check_mode(v: &mut Validator, mode: Option<&str>) {
    if let Some(m) = mode {
        v.check(
            "mode",
            m == "readonly" || m == "readwrite",
            "must be readonly or readwrite",
        );
    }
}

fn check_description(v: &mut Validator, d: Option<&str>) {
    if let Some(d) = d {
        v.length("description", d, 0, 1000);
    }
}

/// The full share as the API shows it.
pub fn view(s: &StorageShare) -> Value {
    json!({
        "id": s.id,
        "source_container_id": s.source_container_id,
        "source_path": s.source_path,
        "target_container_id": s.target_container_id,
        "target_project_id": s.target_project_id,
        "target_type": s.target_type,
        "mode": s.mode,
        "alias": s.alias,
        "label": s.label,
        "description": s.description,
        "enabled": s.enabled,
        "status": s.status,
        "status_message": s.status_message,
        "expires_at": s.expires_at,
        "expiry_notified": s.expiry_notified,
        "created_by": s.created_by,
        "realm_ids": s.realm_ids,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "mount_path": mount_path(s),
    })
}

/// An incoming share as its target sees it.
fn incoming_view(s: &StorageShare, target: Option<&Container>) -> Value {
    let mut v = json!({
        "id": s.id,
        "source_container_id": s.source_container_id,
        "source_path": s.source_path,
        "target_container_id": s.target_container_id,
        "target_project_id": s.target_project_id,
        "target_type": s.target_type,
        "mode": s.mode,
        "enabled": s.enabled,
        "status": s.status,
        "status_message": s.status_message,
        "expires_at": s.expires_at,
        "created_by": s.created_by,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "mount_path": mount_path(s),
    });
    if let Some(c) = target {
        v["mounted"] = json!(mounted_in(s, c, unix_now()));
    }
    v
}

fn event(
    tx: &Tx<'_>,
    name: &'static str,
    s: &StorageShare,
    extra: Option<Value>,
) -> StoreResult<()> {
    let mut payload = json!({
        "share_id": s.id,
        "container_id": s.source_container_id,
        "source_path": s.source_path,
        "target_type": s.target_type,
        "target_container_id": s.target_container_id,
        "target_project_id": s.target_project_id,
        "mode": s.mode,
    });
    if let (Some(Value::Object(more)), Value::Object(p)) = (extra, &mut payload) {
        p.extend(more);
    }
    record(
        tx,
        NewEvent::new(name, "storage_share", &s.id, &s.user_id).payload(payload),
    )
}

fn put_share(tx: &Tx<'_>, s: &StorageShare) -> StoreResult<()> {
    tx.put(&SHARES, &s.id, s)?;
    tx.add_multi(&SHARES_BY_SOURCE, &s.source_container_id, &s.id)?;
    let target = s
        .target_container_id
        .as_ref()
        .or(s.target_project_id.as_ref());
    if let Some(t) = target {
        tx.add_multi(&SHARES_BY_TARGET, t, &s.id)?;
    }
    Ok(())
}

fn remove_share(tx: &Tx<'_>, s: &StorageShare) -> StoreResult<()> {
    tx.remove(&SHARES, &s.id)?;
    tx.remove_multi(&SHARES_BY_SOURCE, &s.source_container_id, &s.id)?;
    let target = s
        .target_container_id
        .as_ref()
        .or(s.target_project_id.as_ref());
    if let Some(t) = target {
        tx.remove_multi(&SHARES_BY_TARGET, t, &s.id)?;
    }
    Ok(())
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShare {
    pub source_path: String,
    pub target_container_id: Option<String>,
    pub target_project_id: Option<String>,
    pub mode: String,
    pub alias: Option<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub expires_at: Option<i64>,
}

/// Which container or project receives a new share.
enum Target {
    Container(String),
    Project(String),
}

fn validate_create(body: &CreateShare) -> ApiResult<(String, Target)> {
    let mut v = Validator::new();
    let path = match normalize_path(&body.source_path) {
        Ok(p) if body.source_path.len() <= 4096 => Some(p),
        Ok(_) => {
            v.fail("source_path", "must be at most 4096 characters");
            None
        }
        Err(e) => {
            v.fail("source_path", e);
            None
        }
    };
    let target = match (&body.target_container_id, &body.target_project_id) {
        (Some(_), Some(_)) => {
            v.fail(
                "target_container_id",
                "give either target_container_id or target_project_id, not both",
            );
            None
        }
        (None, None) => {
            v.fail(
                "target_container_id",
                "give target_container_id or target_project_id",
            );
            None
        }
        (Some(c), None) if is_id(c) => Some(Target::Container(c.clone())),
        (None, Some(p)) if is_id(p) => Some(Target::Project(p.clone())),
        (Some(_), None) => {
            v.fail(
                "target_container_id",
                "must be a 24-character lowercase hex id",
            );
            None
        }
        (None, Some(_)) => {
            v.fail(
                "target_project_id",
                "must be a 24-character lowercase hex id",
            );
            None
        }
    };
    check_mode(&mut v, Some(&body.mode));
    check_tag(&mut v, "alias", body.alias.as_deref());
    check_tag(&mut v, "label", body.label.as_deref());
    check_description(&mut v, body.description.as_deref());
    if let Some(e) = body.expires_at {
        v.check("expires_at", e >= 0, "must be a Unix time in seconds");
    }
    v.finish()?;
    match (path, target) {
        (Some(p), Some(t)) => Ok((p, t)),
        _ => Err(ApiError::field("source_path", "is invalid")),
    }
}

/// `storageShares.create`: the caller needs edit access to the source and
/// to the target container or project.
pub async fn create(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: CreateShare,
) -> ApiResult<StorageShare> {
    let (source, _) = lookup(state, caller, id, Level::Edit)?;
    let (path, target) = validate_create(&body)?;
    match &target {
        Target::Container(t) => {
            if t == id {
                return Err(ApiError::field(
                    "target_container_id",
                    "a container cannot share with itself",
                ));
            }
            lookup(state, caller, t, Level::Edit)?;
        }
        Target::Project(p) => {
            access(&state.store, caller.user_id(), p)?.require(Level::Edit)?;
        }
    }
    let (target_container_id, target_project_id, target_type) = match target {
        Target::Container(t) => (Some(t), None, "container"),
        Target::Project(p) => (None, Some(p), "project"),
    };
    let existing = state.store.owned(&SHARES_BY_SOURCE, id, &SHARES)?;
    if existing.len() >= MAX_SHARES_PER_CONTAINER {
        return Err(ApiError::forbidden(
            "STORAGE_SHARE_LIMIT",
            format!("a container offers at most {MAX_SHARES_PER_CONTAINER} shares"),
        ));
    }
    let duplicate = existing.iter().any(|s| {
        s.source_path == path
            && s.target_container_id == target_container_id
            && s.target_project_id == target_project_id
    });
    if duplicate {
        return Err(ApiError::conflict(
            "STORAGE_SHARE_EXISTS",
            "this path is already shared with this target",
        ));
    }
    if let Some(a) = &body.alias {
        if existing.iter().any(|s| s.alias.as_ref() == Some(a)) {
            return Err(ApiError::conflict(
                "STORAGE_SHARE_ALIAS_EXISTS",
                "another share of this container has this alias",
            ));
        }
    }
    let export = state.runtime()?.export_dir(id, &path).await?;
    let at = now();
    let mut realm_ids = source.realm_ids.clone();
    if let Some(r) = &caller.realm_id {
        if !realm_ids.contains(r) {
            realm_ids.push(r.clone());
        }
    }
    let share = StorageShare {
        id: new_id(),
        source_container_id: id.to_string(),
        source_path: path,
        target_container_id,
        target_project_id,
        target_type: target_type.into(),
        mode: body.mode,
        alias: body.alias,
        label: body.label,
        description: body.description,
        enabled: body.enabled.unwrap_or(true),
        status: "active".into(),
        status_message: None,
        expires_at: body.expires_at,
        expiry_notified: false,
        created_by: caller.user_id().to_string(),
        realm_ids,
        created_at: at.clone(),
        updated_at: at,
        user_id: source.user_id.clone(),
        export_path: export.to_string_lossy().into_owned(),
        overrides: Vec::new(),
        expired_recorded: false,
    };
    state.store.tx(|tx| {
        if tx.get(&CONTAINERS, id)?.is_none() {
            return Err(ApiError::NotFound("container").into());
        }
        put_share(tx, &share)?;
        event(tx, "storage.share.created", &share, None)
    })?;
    apply_share(state, share).await
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub target_type: Option<String>,
    pub label: Option<String>,
    pub status: Option<String>,
    pub enabled: Option<String>,
    pub include_expired: Option<String>,
    pub realm_id: Option<String>,
}

fn bool_param(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<bool> {
    match raw {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            v.fail(field, "must be true or false");
            None
        }
    }
}

/// `storageShares.list`: the shares container `id` offers.
pub fn list(
    state: &AppState,
    caller: &Principal,
    id: &str,
    q: &ListQuery,
) -> ApiResult<Vec<Value>> {
    let mut v = Validator::new();
    if let Some(t) = &q.target_type {
        v.check(
            "target_type",
            t == "container" || t == "project",
            "must be container or project",
        );
    }
    if let Some(s) = &q.status {
        v.check(
            "status",
            s == "active" || s == "failed",
            "must be active or failed",
        );
    }
    let enabled = bool_param(&mut v, "enabled", q.enabled.as_deref());
    let include_expired = bool_param(&mut v, "include_expired", q.include_expired.as_deref());
    v.finish()?;
    lookup(state, caller, id, Level::Read)?;
    let now = unix_now();
    Ok(state
        .store
        .owned(&SHARES_BY_SOURCE, id, &SHARES)?
        .into_iter()
        .filter(|s| q.target_type.as_ref().is_none_or(|t| *t == s.target_type))
        .filter(|s| q.label.is_none() || s.label == q.label)
        .filter(|s| q.status.as_ref().is_none_or(|st| *st == s.status))
        .filter(|s| enabled.is_none_or(|e| e == s.enabled))
        .filter(|s| include_expired == Some(true) || !expired(s, now))
        .filter(|s| in_realm(caller, &s.realm_ids))
        .map(|s| view(&s))
        .collect())
}

/// A share offered by container `id`; 404 for any other.
fn owned_share(state: &AppState, id: &str, share_id: &str) -> ApiResult<StorageShare> {
    check_id("shareId", share_id)?;
    state
        .store
        .get(&SHARES, share_id)?
        .filter(|s| s.source_container_id == id)
        .ok_or(ApiError::NotFound("storage share"))
}

/// `storageShares.get`
pub fn get(state: &AppState, caller: &Principal, id: &str, share_id: &str) -> ApiResult<Value> {
    lookup(state, caller, id, Level::Read)?;
    Ok(view(&owned_share(state, id, share_id)?))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShare {
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Option<i64>>,
}

/// `storageShares.update`
pub async fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    share_id: &str,
    body: UpdateShare,
) -> ApiResult<StorageShare> {
    let mut v = Validator::new();
    check_mode(&mut v, body.mode.as_deref());
    check_tag(&mut v, "alias", body.alias.clone().flatten().as_deref());
    check_tag(&mut v, "label", body.label.clone().flatten().as_deref());
    check_description(&mut v, body.description.clone().flatten().as_deref());
    if let Some(Some(e)) = body.expires_at {
        v.check("expires_at", e >= 0, "must be a Unix time in seconds");
    }
    v.finish()?;
    lookup(state, caller, id, Level::Edit)?;
    owned_share(state, id, share_id)?;
    if let Some(Some(a)) = &body.alias {
        let taken = state
            .store
            .owned(&SHARES_BY_SOURCE, id, &SHARES)?
            .iter()
            .any(|s| s.id != share_id && s.alias.as_ref() == Some(a));
        if taken {
            return Err(ApiError::conflict(
                "STORAGE_SHARE_ALIAS_EXISTS",
                "another share of this container has this alias",
            ));
        }
    }
    let share = state.store.tx(|tx| {
        let mut s = tx
            .get(&SHARES, share_id)?
            .filter(|s| s.source_container_id == id)
            .ok_or(ApiError::NotFound("storage share"))?;
        let was_enabled = s.enabled;
        if let Some(m) = &body.mode {
            s.mode = m.clone();
        }
        if let Some(a) = &body.alias {
            s.alias = a.clone();
        }
        if let Some(l) = &body.label {
            s.label = l.clone();
        }
        if let Some(d) = &body.description {
            s.description = d.clone();
        }
        if let Some(e) = body.enabled {
            s.enabled = e;
        }
        if let Some(e) = body.expires_at {
            if e != s.expires_at {
                s.expiry_notified = false;
                s.expired_recorded = false;
            }
            s.expires_at = e;
        }
        s.updated_at = now();
        tx.put(&SHARES, &s.id, &s)?;
        event(tx, "storage.share.updated", &s, None)?;
        if s.enabled != was_enabled {
            let name = if s.enabled {
                "storage.share.enabled"
            } else {
                "storage.share.disabled"
            };
            event(tx, name, &s, None)?;
        }
        Ok(s)
    })?;
    apply_share(state, share).await
}

/// `storageShares.delete`: needs edit access to the source container.
pub async fn delete(state: &AppState, caller: &Principal, share_id: &str) -> ApiResult<()> {
    check_id("shareId", share_id)?;
    let share = state
        .store
        .get(&SHARES, share_id)?
        .ok_or(ApiError::NotFound("storage share"))?;
    lookup(state, caller, &share.source_container_id, Level::Edit).map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("storage share"),
        other => other,
    })?;
    let ids = affected(&state.store, &share)?;
    state.store.tx(|tx| {
        let Some(s) = tx.get(&SHARES, share_id)? else {
            return Err(ApiError::NotFound("storage share").into());
        };
        remove_share(tx, &s)?;
        event(tx, "storage.share.deleted", &s, None)
    })?;
    apply(state, &ids).await?;
    Ok(())
}

/// `storageShares.listIncoming`: shares container `id` receives.
pub fn list_incoming(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Vec<Value>> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    let now = unix_now();
    Ok(incoming(&state.store, &c)?
        .iter()
        .filter(|s| !expired(s, now))
        .map(|s| incoming_view(s, Some(&c)))
        .collect())
}

/// `storageShares.toggleIncomingMount`: the target accepts (mounts) or
/// refuses (unmounts at its next start) an incoming share.
pub async fn toggle_incoming(
    state: &AppState,
    caller: &Principal,
    id: &str,
    share_id: &str,
    mount: bool,
) -> ApiResult<(StorageShare, MountOverride)> {
    check_id("shareId", share_id)?;
    let (c, _) = lookup(state, caller, id, Level::Edit)?;
    let share = state
        .store
        .get(&SHARES, share_id)?
        .filter(|s| targets(s, &c))
        .ok_or(ApiError::NotFound("storage share"))?;
    let at = now();
    let (share, ov) = state.store.tx(|tx| {
        let mut s = tx
            .get(&SHARES, &share.id)?
            .ok_or(ApiError::NotFound("storage share"))?;
        let ov = match s.overrides.iter_mut().find(|o| o.container_id == id) {
            Some(o) => {
                o.mount = mount;
                o.updated_at = at.clone();
                o.clone()
            }
            None => {
                let o = MountOverride {
                    id: new_id(),
                    share_id: s.id.clone(),
                    container_id: id.to_string(),
                    mount,
                    created_at: at.clone(),
                    updated_at: at.clone(),
                };
                s.overrides.push(o.clone());
                o
            }
        };
        s.updated_at = at.clone();
        tx.put(&SHARES, &s.id, &s)?;
        event(
            tx,
            "storage.share.mount_changed",
            &s,
            Some(json!({"target_container": id, "mount": mount})),
        )?;
        Ok((s, ov))
    })?;
    if let Some(problem) = apply(state, &[id.to_string()]).await? {
        return Err(ApiError::internal(problem));
    }
    Ok((share, ov))
}

/// `storageShares.listGlobal`: shares offered by every container the caller
/// can read.
pub fn list_global(state: &AppState, caller: &Principal) -> ApiResult<Vec<Value>> {
    let now = unix_now();
    let mut out = Vec::new();
    for a in reachable(&state.store, caller.user_id())? {
        for c in model::in_project(&state.store, &a.project.id)? {
            for s in state.store.owned(&SHARES_BY_SOURCE, &c.id, &SHARES)? {
                if !expired(&s, now) && in_realm(caller, &s.realm_ids) {
                    out.push(view(&s));
                }
            }
        }
    }
    Ok(out)
}

/// `storageShares.listIncomingGlobal`: shares every container the caller
/// can read receives, once each.
pub fn list_incoming_global(state: &AppState, caller: &Principal) -> ApiResult<Vec<Value>> {
    let now = unix_now();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in reachable(&state.store, caller.user_id())? {
        for c in model::in_project(&state.store, &a.project.id)? {
            if !in_realm(caller, &c.realm_ids) && !in_realm(caller, &a.project.realm_ids) {
                continue;
            }
            for s in incoming(&state.store, &c)? {
                if !expired(&s, now) && seen.insert(s.id.clone()) {
                    out.push(incoming_view(&s, None));
                }
            }
        }
    }
    Ok(out)
}

/// Removes the shares a deleted container offered or received directly, and
/// its answers to project-wide shares, then updates the other containers.
pub async fn on_container_deleted(state: &AppState, container_id: &str) -> ApiResult<()> {
    let mut gone = state
        .store
        .owned(&SHARES_BY_SOURCE, container_id, &SHARES)?;
    gone.extend(
        state
            .store
            .owned(&SHARES_BY_TARGET, container_id, &SHARES)?,
    );
    let mut ids = Vec::new();
    for s in &gone {
        ids.extend(affected(&state.store, s)?);
    }
    let answered: Vec<StorageShare> = state
        .store
        .scan(&SHARES)?
        .into_iter()
        .filter(|s| override_of(s, container_id).is_some())
        .collect();
    state.store.tx(|tx| {
        for s in &gone {
            if let Some(s) = tx.get(&SHARES, &s.id)? {
                remove_share(tx, &s)?;
                event(
                    tx,
                    "storage.share.deleted",
                    &s,
                    Some(json!({"reason": "container deleted"})),
                )?;
            }
        }
        for s in &answered {
            if let Some(mut s) = tx.get(&SHARES, &s.id)? {
                s.overrides.retain(|o| o.container_id != container_id);
                tx.put(&SHARES, &s.id, &s)?;
            }
        }
        Ok(())
    })?;
    ids.retain(|i| i != container_id);
    ids.sort();
    ids.dedup();
    apply(state, &ids).await?;
    Ok(())
}

/// Removes the shares aimed at a deleted project (its containers are gone).
pub fn on_project_deleted(state: &AppState, project_id: &str) -> ApiResult<()> {
    let gone = state.store.owned(&SHARES_BY_TARGET, project_id, &SHARES)?;
    state.store.tx(|tx| {
        for s in &gone {
            if let Some(s) = tx.get(&SHARES, &s.id)? {
                remove_share(tx, &s)?;
                event(
                    tx,
                    "storage.share.deleted",
                    &s,
                    Some(json!({"reason": "project deleted"})),
                )?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Background upkeep: warns a day before a share expires, and at expiry
/// records the event and takes the share out of its targets' mounts.
pub async fn expire(state: &AppState) {
    if let Err(e) = expire_once(state).await {
        tracing::warn!(error = %e, "storage share expiry failed");
    }
}

async fn expire_once(state: &AppState) -> ApiResult<()> {
    let now = unix_now();
    for s in state.store.scan(&SHARES)? {
        let Some(at) = s.expires_at else { continue };
        let (name, due) = if at <= now {
            ("storage.share.expired", !s.expired_recorded)
        } else {
            (
                "storage.share.expiring_soon",
                at - now <= EXPIRY_WARNING_SECS && !s.expiry_notified,
            )
        };
        if !due {
            continue;
        }
        let share = state.store.tx(|tx| {
            let Some(mut cur) = tx.get(&SHARES, &s.id)? else {
                return Ok(None);
            };
            cur.expiry_notified = true;
            if at <= now {
                cur.expired_recorded = true;
            }
            tx.put(&SHARES, &cur.id, &cur)?;
            event(tx, name, &cur, Some(json!({"expires_at": at})))?;
            Ok(Some(cur))
        })?;
        if let (Some(share), true) = (share, at <= now) {
            apply_share(state, share).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_system_paths_refused() {
        assert_eq!(normalize_path("/data//x/./").unwrap(), "/data/x");
        assert_eq!(normalize_path("/srv/app.v1").unwrap(), "/srv/app.v1");
        for bad in [
            "data",
            "/",
            "//",
            "/data/../etc",
            "/proc",
            "/proc/1",
            "/sys/fs",
            "/dev",
            "/run/x",
            "/var/run",
            "/boot",
            "/mnt/shares/x",
            "/da ta",
            "/data\0",
            "/d$x",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_path("/running").is_ok());
        assert!(normalize_path("/var/runner").is_ok());
    }

    #[test]
    fn tags_follow_the_lowercase_pattern() {
        let mut v = Validator::new();
        check_tag(&mut v, "ok", Some("team_a-1"));
        assert!(v.finish().is_ok());
        for bad in ["ab", "-abc", "abc-", "ABC", "a b c"] {
            let mut v = Validator::new();
            check_tag(&mut v, "alias", Some(bad));
            assert!(v.finish().is_err(), "{bad}");
        }
    }
}
