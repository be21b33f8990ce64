//! Rules of the module store: names, validation by compiling with the hook
//! engine, content-addressed bytes on disk, and the "in use" check against
//! the container's proxy document.

use std::collections::BTreeMap;
use std::path::Path;

use dataplane::config::ModuleRef;
use serde_json::{json, Value};

use super::model::{key, ModuleImport, ModuleRecord, MODULES, MODULES_BY_CONTAINER};
use crate::auth::principal::Principal;
use crate::containers::service::lookup;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::state::AppState;
use crate::store::Store;
use crate::wire::now;

/// Largest module accepted.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
const MAX_NAME_CHARS: usize = 64;

/// A name is what a hook's `script.path` says: 1–64 of `A-Z a-z 0-9 . _ -`,
/// not starting with a dot (no hidden files, no `..`).
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "name",
            "must be 1 to 64 characters of letters, digits, '.', '_' and '-', not starting with '.'",
        ))
    }
}

/// `proxyModules.put`: validates and compiles the module, stores its bytes by
/// sha256 and its record by name, then republishes the container's unit.
/// Returns the record and whether the name was new.
pub async fn put(
    state: &AppState,
    caller: &Principal,
    id: &str,
    name: &str,
    wasm: Vec<u8>,
) -> ApiResult<(Value, bool)> {
    lookup(state, caller, id, Level::Edit)?;
    check_name(name)?;
    if wasm.len() > MAX_MODULE_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let hooks = state.dataplane.hooks().clone();
    // Cranelift takes tens to hundreds of milliseconds: never on an async worker.
    let (wasm, compiled) = tokio::task::spawn_blocking(move || {
        let compiled = hooks
            .engine()
            .map_err(ApiError::internal)
            .and_then(|engine| {
                engine
                    .compile(&wasm)
                    .map_err(|e| ApiError::field("body", e.to_string()))
            });
        (wasm, compiled)
    })
    .await
    .map_err(ApiError::internal)?;
    let compiled = compiled?;
    let dir = crate::modules::module_dir(&state.settings.data_dir);
    store_bytes(&dir, compiled.sha256(), &wasm)?;
    let imports = compiled
        .imports()
        .iter()
        .map(|i| ModuleImport {
            module: i.module.clone(),
            name: i.name.clone(),
            provision: match i.provision {
                hook_engine::Provision::Implemented => "implemented",
                hook_engine::Provision::NoOp => "no-op",
                hook_engine::Provision::Unimplemented => "unimplemented",
            }
            .to_string(),
        })
        .collect::<Vec<_>>();
    let record_key = key(id, name);
    let (saved, created) = state.store.tx(|tx| {
        let container = tx
            .get(&crate::containers::model::CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        let previous = tx.get(&MODULES, &record_key)?;
        let stamp = now();
        let saved = ModuleRecord {
            container_id: id.to_string(),
            name: name.to_string(),
            sha256: compiled.sha256().to_string(),
            size: compiled.size() as u64,
            imports: imports.clone(),
            abi_version: compiled.abi_version().map(str::to_string),
            created_at: previous
                .as_ref()
                .map_or_else(|| stamp.clone(), |p| p.created_at.clone()),
            updated_at: stamp,
        };
        tx.put(&MODULES, &record_key, &saved)?;
        tx.add_multi(&MODULES_BY_CONTAINER, id, &record_key)?;
        record(
            tx,
            NewEvent::new(
                "container.resource_updated",
                "container",
                id,
                &container.user_id,
            )
            .payload(json!({
                "container_id": id,
                "proxy_module": {"name": name, "sha256": saved.sha256, "action": "put"},
            })),
        )?;
        Ok((saved, previous.is_none()))
    })?;
    crate::proxy::compile::recompile(state, id).await?;
    Ok((view(&saved), created))
}

/// `proxyModules.list`
pub fn list(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    lookup(state, caller, id, Level::Read)?;
    let modules = records(&state.store, id)?;
    Ok(json!({"modules": modules.iter().map(view).collect::<Vec<_>>()}))
}

/// `proxyModules.get`
pub fn get(state: &AppState, caller: &Principal, id: &str, name: &str) -> ApiResult<Value> {
    lookup(state, caller, id, Level::Read)?;
    check_name(name)?;
    let found = state
        .store
        .get(&MODULES, &key(id, name))?
        .ok_or(ApiError::NotFound("module"))?;
    Ok(view(&found))
}

/// `proxyModules.delete`: refused (409) while a hook of the container's
/// proxy document names the module.
pub async fn delete(state: &AppState, caller: &Principal, id: &str, name: &str) -> ApiResult<()> {
    let (container, _) = lookup(state, caller, id, Level::Edit)?;
    check_name(name)?;
    let record_key = key(id, name);
    if state.store.get(&MODULES, &record_key)?.is_none() {
        return Err(ApiError::NotFound("module"));
    }
    if let Some(hook) = hook_using(state, &container, name)? {
        return Err(ApiError::conflict(
            "MODULE_IN_USE",
            format!("hook {hook} runs this module; remove or change the hook first"),
        ));
    }
    let removed = state.store.tx(|tx| {
        let found = tx
            .get(&MODULES, &record_key)?
            .ok_or(ApiError::NotFound("module"))?;
        tx.remove(&MODULES, &record_key)?;
        tx.remove_multi(&MODULES_BY_CONTAINER, id, &record_key)?;
        record(
            tx,
            NewEvent::new(
                "container.resource_updated",
                "container",
                id,
                &container.user_id,
            )
            .payload(json!({
                "container_id": id,
                "proxy_module": {"name": name, "sha256": found.sha256, "action": "delete"},
            })),
        )?;
        Ok(found)
    })?;
    forget_bytes_if_unused(state, &removed.sha256)?;
    crate::proxy::compile::recompile(state, id).await?;
    Ok(())
}

/// The module store of a container as its unit carries it: name → content.
pub fn refs_for_container(store: &Store, id: &str) -> ApiResult<BTreeMap<String, ModuleRef>> {
    Ok(records(store, id)?
        .into_iter()
        .map(|r| {
            (
                r.name,
                ModuleRef {
                    sha256: r.sha256,
                    size: r.size,
                },
            )
        })
        .collect())
}

fn records(store: &Store, id: &str) -> ApiResult<Vec<ModuleRecord>> {
    let mut out = Vec::new();
    for record_key in store.ids(&MODULES_BY_CONTAINER, id)? {
        if let Some(found) = store.get(&MODULES, &record_key)? {
            out.push(found);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn hook_using(
    state: &AppState,
    container: &crate::containers::model::Container,
    name: &str,
) -> ApiResult<Option<String>> {
    let document = crate::proxy::documents::merged_for_container(&state.store, container)?;
    Ok(document.and_then(|d| {
        d.hooks
            .values()
            .flatten()
            .find(|h| h.script.path == name)
            .map(|h| h.id.clone())
    }))
}

fn view(r: &ModuleRecord) -> Value {
    json!({
        "name": r.name,
        "sha256": r.sha256,
        "size": r.size,
        "abi_version": r.abi_version,
        "imports": r.imports,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

/// Writes `<dir>/<sha256>.wasm` through a temporary file, once per content.
fn store_bytes(dir: &Path, sha256: &str, wasm: &[u8]) -> ApiResult<()> {
    let target = dataplane::hooks::module_path(dir, sha256);
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(ApiError::internal)?;
    let temporary = dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, wasm).map_err(ApiError::internal)?;
    std::fs::rename(&temporary, &target).map_err(ApiError::internal)
}

/// Removes the bytes of a module no container names any more. The compiled
/// artifact stays: it is only a cache.
fn forget_bytes_if_unused(state: &AppState, sha256: &str) -> ApiResult<()> {
    let still_used = state
        .store
        .scan(&MODULES)?
        .iter()
        .any(|r| r.sha256 == sha256);
    if !still_used {
        let dir = crate::modules::module_dir(&state.settings.data_dir);
        let _ = std::fs::remove_file(dataplane::hooks::module_path(&dir, sha256));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for good in ["auth.wasm", "rate-limit", "v1_2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "with space", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
