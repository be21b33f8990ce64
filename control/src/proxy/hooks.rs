//! `proxyHooks.*`: the hook lists of a container's proxy document. Each
//! service key (`http` for every port of the program, `http-3000` for one)
//! holds a first-match-wins list; a hook's place in the list is its
//! `position`. Hooks are stored and published here; the data plane runs
//! them.

use dataplane::config::{AppliesTo, FailureMode, Hook, HookMatch, HookScript, OneOrMany};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::documents::{self, Change, Owner, Precondition, ProxyFile};
use super::validate;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::Validator;

/// A hook as clients send it (`addContainerProxyHook`,
/// `updateContainerProxyHook`, and each entry of a replaced document).
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    /// Only in a replaced document: keeps a hook's id. New hooks get one.
    pub id: Option<String>,
    /// Every present criterion must match: `method` (one or a list),
    /// `path` (glob: `*` within a segment, `**` across), `headers` (name →
    /// exact value, or `true` for presence).
    #[serde(rename = "match")]
    #[schema(value_type = Object)]
    pub matcher: HookMatchInput,
    pub script: HookScriptInput,
    /// Milliseconds per callback, 1–30000.
    pub timeout: Option<u32>,
    #[schema(value_type = Option<Object>)]
    pub applies_to: Option<AppliesToInput>,
    /// 0-based place in the service's list (beyond the end = last). On an
    /// update it moves the hook.
    pub position: Option<usize>,
    /// Extension: run a fresh Wasm instance for every request instead of a
    /// pooled one.
    pub fresh_instance: Option<bool>,
    /// Extension: `fail-closed` (default: a failing hook answers 502/504)
    /// or `fail-open` (the request goes on as if the hook were absent).
    #[schema(value_type = Option<String>)]
    pub failure_mode: Option<FailureMode>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct HookMatchInput {
    pub method: Option<OneOrMany>,
    pub path: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, Value>>,
}

/// Which module runs.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookScriptInput {
    /// Module name in the container's module store.
    pub path: String,
    pub subdomain: Option<String>,
    #[serde(rename = "execId")]
    pub exec_id: Option<String>,
    /// Extension: the plugin configuration handed to the module at
    /// `proxy_on_configure`.
    pub config: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AppliesToInput {
    /// Run only for requests authenticated by one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `moveContainerProxyHook` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInput {
    pub position: usize,
}

/// A new hook id: a ULID (48 bits of milliseconds, 80 random bits) in
/// lowercase Crockford base32.
pub fn new_hook_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let millis = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u128;
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let mut value = (millis & ((1 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Turns client input into a stored hook with `id` (a new one when `None`
/// and the input has none), checking its fields under `prefix`.
pub fn from_input(prefix: &str, input: HookInput, id: Option<&str>) -> ApiResult<Hook> {
    let id = id
        .map(str::to_string)
        .or(input.id)
        .unwrap_or_else(new_hook_id);
    let hook = Hook {
        id,
        matcher: HookMatch {
            method: input.matcher.method,
            path: input.matcher.path,
            headers: input.matcher.headers.unwrap_or_default(),
        },
        script: HookScript {
            path: input.script.path,
            subdomain: input.script.subdomain,
            exec_id: input.script.exec_id,
            config: input.script.config,
        },
        timeout: input.timeout,
        applies_to: input.applies_to.map(|a| AppliesTo { groups: a.groups }),
        fresh_instance: input.fresh_instance.unwrap_or(false),
        failure_mode: input.failure_mode.unwrap_or_default(),
    };
    let mut v = Validator::new();
    validate::hook(&mut v, prefix, &hook);
    v.finish()?;
    Ok(hook)
}

/// A hook as answered: the stored fields and its position.
pub fn view(h: &Hook, position: usize) -> Value {
    let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
    v["position"] = json!(position);
    v
}

fn check_service(service: &str) -> ApiResult<()> {
    let mut v = Validator::new();
    validate::service_key(&mut v, "service", service);
    v.finish()
}

fn find(file: &ProxyFile, service: &str, id: &str) -> Option<(usize, Hook)> {
    file.hooks
        .get(service)?
        .iter()
        .enumerate()
        .find(|(_, h)| h.id == id)
        .map(|(i, h)| (i, h.clone()))
}

fn hook_answer(file: &ProxyFile, service: &str, id: &str) -> ApiResult<Value> {
    let (position, hook) = find(file, service, id).ok_or(ApiError::NotFound("hook"))?;
    Ok(json!({
        "hook": view(&hook, position),
        "file_version": file.file_version,
        "etag": file.etag(),
    }))
}

/// `proxyHooks.listContainerProxyHooks`
pub fn list_all(state: &AppState, owner: Owner<'_>) -> ApiResult<Value> {
    let file = documents::load(&state.store, owner)?;
    let hooks: serde_json::Map<String, Value> = file
        .hooks
        .iter()
        .map(|(k, list)| {
            let views = list.iter().enumerate().map(|(i, h)| view(h, i)).collect();
            (k.clone(), Value::Array(views))
        })
        .collect();
    Ok(json!({"hooks": hooks, "file_version": file.file_version, "etag": file.etag()}))
}

/// `proxyHooks.listContainerProxyServiceHooks`
pub fn list(state: &AppState, owner: Owner<'_>, service: &str) -> ApiResult<Value> {
    if !validate::is_reject_listed(service) {
        check_service(service)?;
    }
    let file = documents::load(&state.store, owner)?;
    let hooks: Vec<Value> = file
        .hooks
        .get(service)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| view(h, i))
        .collect();
    Ok(json!({
        "service": service,
        "hooks": hooks,
        "file_version": file.file_version,
        "etag": file.etag(),
    }))
}

/// `proxyHooks.getContainerProxyHook`
pub fn get(state: &AppState, owner: Owner<'_>, service: &str, id: &str) -> ApiResult<Value> {
    let file = documents::load(&state.store, owner)?;
    hook_answer(&file, service, id)
}

/// `proxyHooks.addContainerProxyHook`: inserted at `position` (appended
/// without one).
pub async fn add(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    service: &str,
    input: HookInput,
) -> ApiResult<Value> {
    check_service(service)?;
    if input.id.is_some() {
        return Err(ApiError::field("id", "hook ids are assigned by the server"));
    }
    let position = input.position;
    let hook = from_input("", input, None)?;
    let id = hook.id.clone();
    let (file, ()) = documents::write(state, owner, pre, |f| {
        let in_document = f.hook_count();
        let list = f.hooks.entry(service.to_string()).or_default();
        limit_checks(list.len(), in_document, service)?;
        let at = position.unwrap_or(list.len()).min(list.len());
        list.insert(at, hook.clone());
        Ok(hook_change("added", service, &hook.id))
    })
    .await?;
    hook_answer(&file, service, &id)
}

/// The limits, checked before inserting so the answer names them plainly.
fn limit_checks(in_service: usize, in_document: usize, service: &str) -> ApiResult<()> {
    if in_service >= validate::MAX_HOOKS_PER_SERVICE {
        return Err(ApiError::field(
            "hooks",
            format!(
                "the `{service}` service already has {} hooks, the most allowed",
                validate::MAX_HOOKS_PER_SERVICE
            ),
        ));
    }
    if in_document >= validate::MAX_HOOKS_PER_DOCUMENT {
        return Err(ApiError::field(
            "hooks",
            format!(
                "the document already has {} hooks, the most allowed",
                validate::MAX_HOOKS_PER_DOCUMENT
            ),
        ));
    }
    Ok(())
}

fn hook_change(what: &str, service: &str, id: &str) -> Change<()> {
    Change::new("proxy.permissions.updated", ())
        .with("operation", format!("hook.{what}"))
        .with("service", service)
        .with("hook_id", id)
}

/// `proxyHooks.updateContainerProxyHook`: replaces the hook's fields, keeps
/// its id; a `position` moves it.
pub async fn update(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    service: &str,
    id: &str,
    input: HookInput,
) -> ApiResult<Value> {
    check_service(service)?;
    if input.id.as_deref().is_some_and(|given| given != id) {
        return Err(ApiError::field("id", "must be the hook in the path"));
    }
    let position = input.position;
    let hook = from_input("", input, Some(id))?;
    let (file, ()) = documents::write(state, owner, pre, |f| {
        let list = f.hooks.get_mut(service).ok_or(ApiError::NotFound("hook"))?;
        let i = list
            .iter()
            .position(|h| h.id == id)
            .ok_or(ApiError::NotFound("hook"))?;
        list.remove(i);
        let to = position.unwrap_or(i).min(list.len());
        list.insert(to, hook.clone());
        Ok(hook_change("updated", service, id))
    })
    .await?;
    hook_answer(&file, service, id)
}

/// `proxyHooks.moveContainerProxyHook`: takes the hook out and puts it back
/// at `position` (beyond the end = last), shifting the others.
pub async fn move_to(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    service: &str,
    id: &str,
    position: usize,
) -> ApiResult<Value> {
    let (file, ()) = documents::write(state, owner, pre, |f| {
        let list = f.hooks.get_mut(service).ok_or(ApiError::NotFound("hook"))?;
        let i = list
            .iter()
            .position(|h| h.id == id)
            .ok_or(ApiError::NotFound("hook"))?;
        let hook = list.remove(i);
        let to = position.min(list.len());
        list.insert(to, hook);
        Ok(hook_change("moved", service, id))
    })
    .await?;
    hook_answer(&file, service, id)
}

/// `proxyHooks.removeContainerProxyHook`
pub async fn remove(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    service: &str,
    id: &str,
) -> ApiResult<Value> {
    let (file, ()) = documents::write(state, owner, pre, |f| {
        let list = f.hooks.get_mut(service).ok_or(ApiError::NotFound("hook"))?;
        let i = list
            .iter()
            .position(|h| h.id == id)
            .ok_or(ApiError::NotFound("hook"))?;
        list.remove(i);
        if list.is_empty() {
            f.hooks.remove(service);
        }
        Ok(hook_change("removed", service, id))
    })
    .await?;
    Ok(json!({"file_version": file.file_version, "etag": file.etag()}))
}

/// `proxyHooks.clearContainerProxyServiceHooks`
pub async fn clear(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    service: &str,
) -> ApiResult<Value> {
    let (file, removed) = documents::write(state, owner, pre, |f| {
        let removed = f.hooks.remove(service).map_or(0, |l| l.len());
        let mut change = Change::new("proxy.permissions.updated", removed)
            .with("operation", "hook.cleared")
            .with("service", service);
        change.payload["removed"] = json!(removed);
        Ok(change)
    })
    .await?;
    Ok(json!({"removed": removed, "file_version": file.file_version, "etag": file.etag()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_distinct_and_time_ordered() {
        let a = new_hook_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_hook_id();
        assert!(validate::is_hook_id(&a), "{a}");
        assert!(validate::is_hook_id(&b), "{b}");
        assert_ne!(a, b);
        assert!(a[..10] < b[..10]);
    }
}
