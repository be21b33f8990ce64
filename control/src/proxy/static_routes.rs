//! Operator static routes: hostnames the operator points at upstreams that
//! are not containers (an internal dashboard, a service on another host),
//! set with `hoody-api admin set-static-routes FILE` in the standalone
//! routes-file format (docs/dataplane.md). They are stored in the store's
//! meta tree, published through the [`crate::publish::Publisher`] like any
//! container unit (so remote nodes serve them too) and published again at
//! every start.
//!
//! Their unit ids start with `static:`, so they never collide with a
//! container's unit.

use dataplane::config::{Delta, RoutesFile, Snapshot};
use dataplane::DataPlane;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const META_KEY: &str = "static_routes";
/// Prefix of every static route's unit id.
pub const ID_PREFIX: &str = "static:";

fn units(file: RoutesFile) -> Snapshot {
    let mut snapshot = file.into_snapshot();
    for unit in &mut snapshot.units {
        unit.id = format!("{ID_PREFIX}{}", unit.id);
    }
    snapshot
}

fn stored(state: &AppState) -> ApiResult<RoutesFile> {
    match state.store.meta_get(META_KEY)? {
        None => Ok(RoutesFile::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(ApiError::internal),
    }
}

/// Replaces the static routes: checked completely first (a bad file
/// changes nothing), then stored and published as removals and upserts.
pub fn set(state: &AppState, file: RoutesFile) -> ApiResult<Value> {
    let next = units(file.clone());
    DataPlane::new(state.dataplane.settings().clone())
        .replace_all(&next)
        .map_err(|e| ApiError::field("routes", e.to_string()))?;
    let previous = units(stored(state)?);
    let bytes = serde_json::to_vec(&file).map_err(ApiError::internal)?;
    state.store.meta_set(META_KEY, &bytes)?;
    let version = publish(state, &previous, &next)?;
    Ok(json!({"routes": next.units.len(), "version": version}))
}

/// Publishes the stored static routes (server start).
pub fn publish_stored(state: &AppState) -> ApiResult<u64> {
    let routes = units(stored(state)?);
    publish(state, &Snapshot::default(), &routes)
}

fn publish(state: &AppState, previous: &Snapshot, next: &Snapshot) -> ApiResult<u64> {
    let refused =
        |e: dataplane::ConfigError| ApiError::conflict("STATIC_ROUTE_REFUSED", e.to_string());
    for gone in previous
        .units
        .iter()
        .filter(|p| !next.units.iter().any(|n| n.id == p.id))
    {
        state
            .publisher
            .publish(Delta::Remove {
                id: gone.id.clone(),
            })
            .map_err(refused)?;
    }
    for unit in &next.units {
        if state.publisher.unit(&unit.id).as_ref() != Some(unit) {
            state
                .publisher
                .publish(Delta::Upsert { unit: unit.clone() })
                .map_err(refused)?;
        }
    }
    Ok(state.publisher.version())
}
