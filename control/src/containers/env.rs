//! `env.*`: a container's environment variables. They are stored on the
//! record and handed to the runtime, which applies them at the next start;
//! `synced` in each answer says whether the running processes already see
//! them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{status, Container, CONTAINERS};
use super::service::{lookup, pending_update};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::state::AppState;
use crate::wire::{now, Validator};

pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_CHARS: usize = 32768;
/// Names the platform sets itself.
const RESERVED: &[&str] = &[
    "PATH", "HOME", "HOSTNAME", "PWD", "SHLVL", "TERM", "USER", "OLDPWD", "_",
];
const RESERVED_PREFIXES: &[&str] = &["HOODY_"];

/// Why `key` cannot be a variable name, if it cannot.
pub fn key_problem(key: &str) -> Option<&'static str> {
    let n = key.chars().count();
    if n == 0 || n > MAX_KEY_CHARS {
        return Some("must be 1 to 128 characters");
    }
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("must start with a letter or '_' and contain only letters, digits and '_'");
    }
    let upper = key.to_ascii_uppercase();
    if RESERVED.contains(&upper.as_str()) || RESERVED_PREFIXES.iter().any(|p| upper.starts_with(p))
    {
        return Some("is reserved by the platform");
    }
    None
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks a JSON object of variables; strings, numbers and booleans are
/// accepted as values (as their text).
pub fn validate_map(
    v: &mut Validator,
    map: Option<&Map<String, Value>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in map.into_iter().flatten() {
        let field = format!("environment_vars.{key}");
        if let Some(problem) = key_problem(key) {
            v.fail(&field, problem);
            continue;
        }
        match value_text(value) {
            Some(text) if text.chars().count() <= MAX_VALUE_CHARS && !text.contains('\0') => {
                out.insert(key.clone(), text);
            }
            Some(_) => v.fail(&field, "value must be at most 32768 characters without NUL"),
            None => v.fail(&field, "value must be a string, number or boolean"),
        }
    }
    out
}

/// `env.list`
pub fn list(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    Ok(json!({"environment_vars": c.environment_vars}))
}

/// Applies `change` to the variables, records the event, and hands the new
/// set to the runtime for the next start.
async fn change(
    state: &AppState,
    caller: &Principal,
    id: &str,
    change: impl Fn(&mut BTreeMap<String, String>) -> ApiResult<()>,
) -> ApiResult<(Value, bool)> {
    lookup(state, caller, id, Level::Edit)?;
    let c: Container = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        change(&mut c.environment_vars)?;
        c.updated_at = now();
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.resource_updated", "container", id, &c.user_id).payload(
                json!({
                    "container_id": id,
                    "project_id": c.project_id,
                    "environment_vars": c.environment_vars.keys().collect::<Vec<_>>(),
                }),
            ),
        )?;
        Ok(c)
    })?;
    state.runtime()?.update(id, pending_update(&c)).await?;
    let synced = c.status != status::RUNNING && c.status != status::PAUSED;
    Ok((
        json!({"environment_vars": c.environment_vars, "synced": synced}),
        synced,
    ))
}

/// `env.bulkSet`: sets every variable of the body, keeping the others.
pub async fn bulk_set(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: Map<String, Value>,
) -> ApiResult<(Value, bool)> {
    let mut v = Validator::new();
    if body.is_empty() {
        v.fail("body", "must name at least one variable");
    }
    let vars = validate_map(&mut v, Some(&body));
    v.finish()?;
    change(state, caller, id, |env| {
        env.extend(vars.clone());
        Ok(())
    })
    .await
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnv {
    pub value: String,
}

/// `env.set`
pub async fn set(
    state: &AppState,
    caller: &Principal,
    id: &str,
    key: &str,
    value: String,
) -> ApiResult<(Value, bool)> {
    if let Some(problem) = key_problem(key) {
        return Err(ApiError::field("key", problem));
    }
    if value.chars().count() > MAX_VALUE_CHARS || value.contains('\0') {
        return Err(ApiError::field(
            "value",
            "must be at most 32768 characters without NUL",
        ));
    }
    change(state, caller, id, |env| {
        env.insert(key.to_string(), value.clone());
        Ok(())
    })
    .await
}

/// `env.delete`: 404 when the variable is not set.
pub async fn delete(
    state: &AppState,
    caller: &Principal,
    id: &str,
    key: &str,
) -> ApiResult<(Value, bool)> {
    change(state, caller, id, |env| {
        env.remove(key)
            .map(|_| ())
            .ok_or(ApiError::NotFound("environment variable"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_shell_rules_and_skip_reserved_names() {
        assert!(key_problem("GREETING").is_none());
        assert!(key_problem("_x1").is_none());
        assert!(key_problem(&"A".repeat(128)).is_none());
        assert!(key_problem(&"A".repeat(129)).is_some());
        assert!(key_problem("").is_some());
        assert!(key_problem("1ABC").is_some());
        assert!(key_problem("A-B").is_some());
        assert!(key_problem("PATH").is_some());
        assert!(key_problem("hoody_token").is_some());
    }

    #[test]
    fn maps_name_each_bad_field() {
        let mut v = Validator::new();
        let map = json!({"OK": "1", "N": 5, "bad key": "x", "OBJ": {"a": 1}});
        let out = validate_map(&mut v, map.as_object());
        assert_eq!(out.get("N").map(String::as_str), Some("5"));
        match v.finish() {
            Err(ApiError::Validation { details, .. }) => {
                assert!(details.contains_key("environment_vars.bad key"));
                assert!(details.contains_key("environment_vars.OBJ"));
                assert!(!details.contains_key("environment_vars.OK"));
            }
            other => panic!("{other:?}"),
        }
    }
}
