//! `proxyAliases.*` rules: labels, targets, paths, expiry and the enabled
//! state; every change is compiled into the container's unit before the
//! call returns.
//!
//! Decisions the contract leaves open:
//! - `http`/`https` without any port targets port 80 (the index default of
//!   1 would point at a port nothing listens on);
//! - a disabled or expired alias answers 404 at the proxy, like an unknown
//!   host: its label stays reserved but reveals nothing about the container;
//! - an expired alias cannot be re-enabled until `expires_at` moves.

use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{self, label_key, Alias, ALIASES, ALIASES_BY_LABEL};
use crate::auth::principal::Principal;
use crate::containers::model::Container;
use crate::containers::service::lookup;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::{Level, PROJECTS};
use crate::projects::service as projects;
use crate::servers::model::SERVERS;
use crate::state::AppState;
use crate::store::{StoreResult, Tx};
use crate::wire::{check_id, format_time, new_id, now, parse_time, Validator};

/// Programs an alias may target: the kit's built-in programs and the
/// transport protocols. `http`/`https` also take an embedded port
/// (`http-3000`).
pub const PROGRAMS: &[&str] = &[
    "terminal", "files", "code", "browser", "agent", "display", "http", "https", "ssh",
];

/// Port of an `http`/`https` alias that names none.
pub const DEFAULT_PORT: u32 = 80;

const LABEL_MIN: usize = 3;
const LABEL_MAX: usize = 61;
const TARGET_PATH_MAX: usize = 1024;

/// Seconds between runs of the expiry job.
pub const EXPIRY_INTERVAL_SECS: u64 = 2;

/// `proxyAliases.create` body. `alias` is a label, or null/false for a
/// generated one.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlias {
    pub container_id: String,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub alias: Option<Value>,
    pub program: String,
    pub port: Option<i64>,
    pub index: Option<i64>,
    pub target_path: Option<String>,
    pub allow_path_override: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    pub enabled: Option<bool>,
}

/// `proxyAliases.update` body; absent fields keep their value.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAlias {
    pub alias: Option<String>,
    pub program: Option<String>,
    pub port: Option<i64>,
    pub index: Option<i64>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub target_path: Option<Option<String>>,
    pub allow_path_override: Option<bool>,
    #[serde(default, deserialize_with = "crate::projects::service::double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<Value>>,
    pub enabled: Option<bool>,
}

/// `proxyAliases.list` filters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub project_id: Option<String>,
    pub container_id: Option<String>,
    pub realm_id: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::lenient::opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::wire::lenient::opt_bool")]
    pub expired: Option<bool>,
}

/// Checks a label against the contract's charset, length and reserved
/// names. Labels shaped like a capability hostname's
/// `{project}-{container}-` prefix are refused too: they could shadow
/// another tenant's container hostname.
pub fn check_label(v: &mut Validator, field: &str, label: &str) {
    let len_ok = (LABEL_MIN..=LABEL_MAX).contains(&label.len());
    let charset_ok = label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if !len_ok {
        v.fail(field, format!("must be {LABEL_MIN}-{LABEL_MAX} characters"));
    } else if !charset_ok {
        v.fail(
            field,
            "may contain only a-z, 0-9 and hyphens, and cannot start or end with a hyphen",
        );
    } else if is_reserved(label) {
        v.fail(field, "is reserved");
    }
}

fn is_reserved(label: &str) -> bool {
    let capability_like = label.len() > 50
        && label.as_bytes()[24] == b'-'
        && label.as_bytes()[49] == b'-'
        && label[..24]
            .bytes()
            .chain(label[25..49].bytes())
            .all(|b| b.is_ascii_hexdigit());
    label == "containers"
        || label == "proxy"
        || label == "workspaces"
        || label.starts_with("proxy-")
        || label.starts_with("workspaces-")
        || capability_like
}

fn generated_label() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The target of an alias: `program` without an embedded port, and the
/// index (the port for `http`/`https`). Authority: `port` > `http-<port>`
/// > `index`.
fn resolve_target(
    v: &mut Validator,
    program: &str,
    port: Option<i64>,
    index: Option<i64>,
) -> (String, u32) {
    let (base, embedded) = match program.rsplit_once('-') {
        Some((p, n))
            if (p == "http" || p == "https")
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (p, Some(n))
        }
        _ => (program, None),
    };
    if !PROGRAMS.contains(&base) {
        v.fail("program", format!("must be one of {}", PROGRAMS.join(", ")));
        return (base.to_string(), 1);
    }
    if let Some(p) = port {
        if !(1..=65535).contains(&p) {
            v.fail("port", "must be between 1 and 65535");
        }
    }
    if let Some(i) = index {
        if i < 1 || i > i64::from(u32::MAX) {
            v.fail("index", "must be at least 1");
        }
    }
    let embedded = embedded.map(|n| n.parse::<i64>().unwrap_or(0));
    if let Some(e) = embedded {
        if !(1..=65535).contains(&e) {
            v.fail("program", "the embedded port must be between 1 and 65535");
        }
    }
    let is_transport = base == "http" || base == "https";
    let chosen = if is_transport {
        port.or(embedded).or(index)
    } else {
        index
    };
    let fallback = if is_transport { DEFAULT_PORT } else { 1 };
    let index = chosen
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(fallback);
    if is_transport && index > 65535 {
        v.fail(
            "index",
            "is the port for http/https and must be at most 65535",
        );
    }
    (base.to_string(), index)
}

/// `/` prefixed, without surrounding whitespace; empty means none.
fn normalize_target_path(v: &mut Validator, path: Option<&str>) -> Option<String> {
    let p = path?.trim();
    if p.is_empty() {
        return None;
    }
    if p.len() > TARGET_PATH_MAX {
        v.fail(
            "target_path",
            format!("must be at most {TARGET_PATH_MAX} characters"),
        );
    } else if !p.bytes().all(|b| b.is_ascii_graphic()) || p.contains(['?', '#']) {
        v.fail(
            "target_path",
            "must be a URL path without spaces, query or fragment",
        );
    } else if p.split('/').any(|s| s == "..") {
        v.fail("target_path", "must not contain `..` segments");
    }
    Some(if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    })
}

/// An expiry from an RFC 3339 string or Unix seconds/milliseconds; it must
/// lie in the future.
fn parse_expiry(v: &mut Validator, value: &Value) -> Option<String> {
    let t = match value {
        Value::Null => return None,
        Value::String(s) => parse_time(s.trim()),
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0).and_then(|n| {
            // Values this large are milliseconds: as seconds they would be
            // thousands of years away.
            let secs = if n >= 100_000_000_000 { n / 1000 } else { n };
            time::OffsetDateTime::from_unix_timestamp(secs).ok()
        }),
        _ => None,
    };
    match t {
        None => {
            v.fail(
                "expires_at",
                "must be an ISO 8601 date-time or a Unix timestamp",
            );
            None
        }
        Some(t) if t <= time::OffsetDateTime::now_utc() => {
            v.fail("expires_at", "must be in the future");
            None
        }
        Some(t) => Some(format_time(t)),
    }
}

fn is_expired(a: &Alias) -> bool {
    a.expires_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| t <= time::OffsetDateTime::now_utc())
}

/// Refuses a label another alias on the same server holds.
fn claim_label(tx: &Tx<'_>, a: &Alias) -> StoreResult<()> {
    match tx.lookup(&ALIASES_BY_LABEL, &label_key(&a.server_id, &a.alias))? {
        Some(holder) if holder != a.id => Err(ApiError::conflict(
            "ALIAS_TAKEN",
            "this alias is already in use on the container's server",
        )
        .into()),
        _ => Ok(()),
    }
}

fn event(tx: &Tx<'_>, name: &'static str, a: &Alias) -> StoreResult<()> {
    record(
        tx,
        NewEvent::new(name, "proxy_alias", &a.id, &a.user_id).payload(json!({
            "alias_id": a.id,
            "alias": a.alias,
            "container_id": a.container_id,
            "project_id": a.project_id,
            "program": a.program,
            "index": a.index,
            "enabled": a.enabled,
        })),
    )
}

/// `proxyAliases.create`
pub async fn create(state: &AppState, caller: &Principal, body: CreateAlias) -> ApiResult<Alias> {
    check_id("container_id", &body.container_id)?;
    let mut v = Validator::new();
    let label = match &body.alias {
        None | Some(Value::Null) | Some(Value::Bool(false)) => generated_label(),
        Some(Value::String(s)) => {
            check_label(&mut v, "alias", s);
            s.clone()
        }
        Some(_) => {
            v.fail("alias", "must be a string, null or false");
            String::new()
        }
    };
    let (program, index) = resolve_target(&mut v, &body.program, body.port, body.index);
    let target_path = normalize_target_path(&mut v, body.target_path.as_deref());
    let expires_at = body
        .expires_at
        .as_ref()
        .and_then(|e| parse_expiry(&mut v, e));
    v.finish()?;
    let (c, _) = lookup(state, caller, &body.container_id, Level::Edit)?;
    let at = now();
    let alias = Alias {
        id: new_id(),
        user_id: c.user_id.clone(),
        project_id: c.project_id.clone(),
        container_id: c.id.clone(),
        server_id: c.server_id.clone(),
        alias: label,
        program,
        index,
        target_path,
        allow_path_override: body.allow_path_override.unwrap_or(true),
        expires_at,
        enabled: body.enabled.unwrap_or(true),
        created_at: at.clone(),
        updated_at: at,
    };
    state.store.tx(|tx| {
        claim_label(tx, &alias)?;
        model::put(tx, &alias, None)?;
        event(tx, "proxy.alias.created", &alias)
    })?;
    crate::proxy::compile::recompile(state, &alias.container_id).await?;
    Ok(alias)
}

/// The alias `id` with its container, if the caller may reach it at
/// `needed`; 404 otherwise.
pub fn find(
    state: &AppState,
    caller: &Principal,
    id: &str,
    needed: Level,
) -> ApiResult<(Alias, Container)> {
    check_id("id", id)?;
    let a = state
        .store
        .get(&ALIASES, id)?
        .ok_or(ApiError::NotFound("alias"))?;
    let (c, _) = lookup(state, caller, &a.container_id, needed).map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("alias"),
        other => other,
    })?;
    Ok((a, c))
}

/// `proxyAliases.update`
pub async fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: UpdateAlias,
) -> ApiResult<Alias> {
    let (current, _) = find(state, caller, id, Level::Edit)?;
    let mut v = Validator::new();
    let mut next = current.clone();
    if let Some(label) = &body.alias {
        check_label(&mut v, "alias", label);
        next.alias = label.clone();
    }
    if body.program.is_some() || body.port.is_some() || body.index.is_some() {
        let program = body.program.as_deref().unwrap_or(&current.program);
        // The stored index stays the fallback only while the program does.
        let index = body
            .index
            .or(body.program.is_none().then_some(i64::from(current.index)));
        (next.program, next.index) = resolve_target(&mut v, program, body.port, index);
    }
    if let Some(tp) = &body.target_path {
        next.target_path = normalize_target_path(&mut v, tp.as_deref());
    }
    if let Some(allow) = body.allow_path_override {
        next.allow_path_override = allow;
    }
    if let Some(exp) = &body.expires_at {
        next.expires_at = exp.as_ref().and_then(|e| parse_expiry(&mut v, e));
    }
    if let Some(enabled) = body.enabled {
        next.enabled = enabled;
    }
    if next.enabled && !current.enabled && is_expired(&next) {
        v.fail(
            "enabled",
            "the alias has expired; set a later expires_at first",
        );
    }
    v.finish()?;
    next.updated_at = now();
    save(state, &current, next, "proxy.alias.updated").await
}

/// `proxyAliases.setState`
pub async fn set_state(
    state: &AppState,
    caller: &Principal,
    id: &str,
    enabled: bool,
) -> ApiResult<Alias> {
    let (current, _) = find(state, caller, id, Level::Edit)?;
    if enabled && is_expired(&current) {
        return Err(ApiError::field(
            "enabled",
            "the alias has expired; set a later expires_at first",
        ));
    }
    let mut next = current.clone();
    next.enabled = enabled;
    next.updated_at = now();
    let name = if enabled {
        "proxy.alias.enabled"
    } else {
        "proxy.alias.disabled"
    };
    save(state, &current, next, name).await
}

/// Writes a changed alias (unless it was deleted meanwhile) and recompiles
/// its container.
async fn save(
    state: &AppState,
    current: &Alias,
    next: Alias,
    event_name: &'static str,
) -> ApiResult<Alias> {
    state.store.tx(|tx| {
        let stored = tx
            .get(&ALIASES, &current.id)?
            .ok_or(ApiError::NotFound("alias"))?;
        claim_label(tx, &next)?;
        model::put(tx, &next, Some(&stored))?;
        event(tx, event_name, &next)
    })?;
    crate::proxy::compile::recompile(state, &next.container_id).await?;
    Ok(next)
}

/// `proxyAliases.delete`
pub async fn delete(state: &AppState, caller: &Principal, id: &str) -> ApiResult<()> {
    let (a, _) = find(state, caller, id, Level::Edit)?;
    state.store.tx(|tx| {
        if tx.get(&ALIASES, &a.id)?.is_none() {
            return Err(ApiError::NotFound("alias").into());
        }
        model::remove(tx, &a)?;
        event(tx, "proxy.alias.deleted", &a)
    })?;
    crate::proxy::compile::recompile(state, &a.container_id).await
}

/// Removes a deleted container's aliases inside its deletion transaction.
pub fn on_container_deleted(tx: &Tx<'_>, aliases: &[Alias]) -> ApiResult<()> {
    for a in aliases {
        if tx.get(&ALIASES, &a.id)?.is_some() {
            model::remove(tx, a)?;
            event(tx, "proxy.alias.deleted", a)?;
        }
    }
    Ok(())
}

/// `proxyAliases.list`: aliases of every container the caller can read.
pub fn list(state: &AppState, caller: &Principal, f: &ListFilter) -> ApiResult<Vec<Alias>> {
    for (field, id) in [
        ("project_id", &f.project_id),
        ("container_id", &f.container_id),
    ] {
        if let Some(id) = id {
            check_id(field, id)?;
        }
    }
    let mut out = Vec::new();
    for access in projects::reachable(&state.store, caller.user_id())? {
        if f.project_id
            .as_ref()
            .is_some_and(|p| *p != access.project.id)
        {
            continue;
        }
        for c in crate::containers::model::in_project(&state.store, &access.project.id)? {
            if f.container_id.as_ref().is_some_and(|id| *id != c.id) {
                continue;
            }
            let realms_ok = match &f.realm_id {
                Some(r) => c.realm_ids.contains(r) || access.project.realm_ids.contains(r),
                None => {
                    projects::in_realm(caller, &c.realm_ids)
                        || projects::in_realm(caller, &access.project.realm_ids)
                }
            };
            if !realms_ok {
                continue;
            }
            out.extend(
                model::of_container(&state.store, &c.id)?
                    .into_iter()
                    .filter(|a| {
                        f.enabled.is_none_or(|e| a.enabled == e)
                            && f.expired.is_none_or(|e| is_expired(a) == e)
                    }),
            );
        }
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// The public hostname URL of an alias on this node.
pub fn url(state: &AppState, a: &Alias) -> String {
    let s = &state.settings;
    let port = s.proxy_listen.port();
    let host = format!("{}.{}.{}", a.alias, s.node_name, s.base_domain);
    if port == 80 {
        format!("http://{host}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// The contract's alias object.
pub fn view(state: &AppState, a: &Alias) -> ApiResult<Value> {
    let server = state.store.get(&SERVERS, &a.server_id)?;
    Ok(json!({
        "id": a.id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "container_id": a.container_id,
        "alias": a.alias,
        "program": a.program,
        "index": a.index,
        "target_path": a.target_path,
        "allow_path_override": a.allow_path_override,
        "expires_at": a.expires_at,
        "enabled": a.enabled,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "server_id": a.server_id,
        "server_name": server.map(|s| s.name),
        "subserver_name": state.settings.node_name,
        "url": url(state, a),
    }))
}

/// `proxyAliases.get`: the view with its project and container.
pub fn detailed_view(state: &AppState, a: &Alias, c: &Container) -> ApiResult<Value> {
    let mut v = view(state, a)?;
    let project = state.store.get(&PROJECTS, &a.project_id)?;
    v["project"] = json!({
        "id": a.project_id,
        "alias": project.map(|p| p.alias),
    });
    v["container"] = json!({"id": c.id, "name": c.name});
    Ok(v)
}

/// Disables aliases whose expiry passed (`proxy.alias.expired`) and
/// recompiles their containers. The data plane already refuses an expired
/// alias by itself; this keeps the records and events in line with it.
pub async fn expire(state: &AppState) -> ApiResult<usize> {
    let due: Vec<Alias> = state
        .store
        .scan(&ALIASES)?
        .into_iter()
        .filter(|a| a.enabled && is_expired(a))
        .collect();
    for a in &due {
        let changed = state.store.tx(|tx| {
            let Some(mut cur) = tx.get(&ALIASES, &a.id)? else {
                return Ok(false);
            };
            if !cur.enabled || !is_expired(&cur) {
                return Ok(false);
            }
            cur.enabled = false;
            cur.updated_at = now();
            tx.put(&ALIASES, &cur.id, &cur)?;
            event(tx, "proxy.alias.expired", &cur)?;
            Ok(true)
        })?;
        if changed {
            crate::proxy::compile::recompile(state, &a.container_id).await?;
        }
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(program: &str, port: Option<i64>, index: Option<i64>) -> (String, u32) {
        let mut v = Validator::new();
        let out = resolve_target(&mut v, program, port, index);
        v.finish().unwrap();
        out
    }

    #[test]
    fn port_beats_embedded_port_beats_index() {
        assert_eq!(
            target("http-3000", Some(8080), Some(1)),
            ("http".into(), 8080)
        );
        assert_eq!(target("http-3000", None, Some(1)), ("http".into(), 3000));
        assert_eq!(target("http", None, Some(5000)), ("http".into(), 5000));
        assert_eq!(target("http", None, None), ("http".into(), DEFAULT_PORT));
        assert_eq!(
            target("terminal", Some(3000), Some(2)),
            ("terminal".into(), 2)
        );
        assert_eq!(target("terminal", None, None), ("terminal".into(), 1));
    }

    #[test]
    fn labels_follow_charset_length_and_reserved_names() {
        let bad = [
            "ab",
            "-abc",
            "abc-",
            "ABC",
            "a_b",
            "containers",
            "proxy",
            "proxy-x",
            "workspaces",
            "workspaces-1",
        ];
        for label in bad {
            let mut v = Validator::new();
            check_label(&mut v, "alias", label);
            assert!(v.finish().is_err(), "{label}");
        }
        let capability = format!("{}-{}-http-80", "a".repeat(24), "b".repeat(24));
        let mut v = Validator::new();
        check_label(&mut v, "alias", &capability);
        assert!(v.finish().is_err());
        for label in ["abc", "containers-my-app", "proxymyapp", &"a".repeat(61)] {
            let mut v = Validator::new();
            check_label(&mut v, "alias", label);
            assert!(v.finish().is_ok(), "{label}");
        }
    }

    #[test]
    fn expiry_takes_iso_seconds_and_milliseconds_in_the_future_only() {
        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        for value in [json!(future), json!(future * 1000)] {
            let mut v = Validator::new();
            assert!(parse_expiry(&mut v, &value).is_some());
            assert!(v.finish().is_ok());
        }
        for value in [json!("2001-01-01T00:00:00Z"), json!("soon"), json!(true)] {
            let mut v = Validator::new();
            parse_expiry(&mut v, &value);
            assert!(v.finish().is_err(), "{value}");
        }
    }
}
