//! HTTP routes of `meta.*`, `utilities.getIpInfo` and `realms.list`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, Version};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::permission::Realms;
use crate::auth::principal::{Authed, ClientIp, MaybeAuthed};
use crate::auth::routes::blocking;
use crate::error::ApiResult;
use crate::events::model::{EVENTS, EVENTS_BY_USER};
use crate::state::AppState;
use crate::tokens::model::{API_TOKENS, API_TOKENS_BY_USER};
use crate::wire::{lenient, now, ok, ApiQuery, Envelope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ip", get(ip_info))
        .route("/meta/public-key", get(public_key))
        .route("/meta/social-stats", get(social_stats))
        .route("/realms", get(list_realms))
}

/// Request headers never echoed back: credentials.
const HIDDEN_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// utilities.getIpInfo: the caller's address as this connection sees it.
/// No lookup service is consulted, so `ip_info` is null.
#[utoipa::path(get, path = "/api/v1/ip", tag = "utilities", operation_id = "utilities.getIpInfo",
    responses((status = 200, description = "The caller's address and request headers", body = Value)),
    security((), ("bearer" = [])))]
pub async fn ip_info(
    ClientIp(ip): ClientIp,
    caller: MaybeAuthed,
    version: Version,
    headers: HeaderMap,
) -> Envelope {
    let mut echoed = Map::new();
    for (name, value) in &headers {
        if HIDDEN_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            echoed.insert(name.as_str().to_string(), Value::String(v.to_string()));
        }
    }
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ok(
        "IP information",
        json!({
            "ip": ip.to_string(),
            "user_agent": header("user-agent"),
            "headers": echoed,
            "referer": header("referer"),
            "timestamp": now(),
            "is_logged": caller.0.is_some(),
            "protocol": format!("{version:?}"),
            "ip_info": Value::Null,
        }),
    )
}

/// meta.getPublicKey: the Ed25519 key that signs identity and container
/// claims.
#[utoipa::path(get, path = "/api/v1/meta/public-key", tag = "meta", operation_id = "meta.getPublicKey",
    responses((status = 200, description = "The signing key and how claims are signed", body = Value)),
    security(()))]
pub async fn public_key(State(state): State<AppState>) -> Envelope {
    let raw = state.keys.verifying_key().to_bytes();
    let engine = &base64::engine::general_purpose::STANDARD;
    let url = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    ok(
        "Public key",
        json!({
            "keys": [{
                "kid": state.keys.kid,
                "algorithm": "ed25519",
                "public_key_hex": state.keys.public_key_hex(),
                "public_key_b64": engine.encode(raw),
                "public_key_b64url": url.encode(raw),
            }],
            "active_kid": state.keys.kid,
            "usage": ["identity_claim", "container_claim"],
            "signing_format": {
                "identity_claim_signed_data": "the payload_b64 text, as sent",
                "container_claim_signed_data": "the payload_b64 text, as sent",
                "replay_tolerance_seconds": 300,
            }
        }),
    )
}

/// meta.getSocialStats: this service follows no social accounts, so every
/// count is unknown.
#[utoipa::path(get, path = "/api/v1/meta/social-stats", tag = "meta", operation_id = "meta.getSocialStats",
    responses((status = 200, description = "Community counters (unknown here)", body = Value)),
    security(()))]
pub async fn social_stats() -> Envelope {
    ok(
        "Social stats",
        json!({
            "github": Value::Null,
            "telegram": Value::Null,
            "discord": Value::Null,
            "discord_online": Value::Null,
            "x": Value::Null,
            "linkedin": Value::Null,
            "fetchedAt": Value::Null,
        }),
    )
}

/// realms.list query.
#[derive(Deserialize, Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RealmsQuery {
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub include_usage: Option<bool>,
    #[serde(default)]
    pub realm_id: Option<String>,
}

/// Per realm: how many of the user's tokens and events name it.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealmUsage {
    pub tokens: u64,
    pub events: u64,
}

/// The realms in use by `user_id`'s tokens and events.
pub fn realms_of(state: &AppState, user_id: &str) -> ApiResult<BTreeMap<String, RealmUsage>> {
    let mut out: BTreeMap<String, RealmUsage> = BTreeMap::new();
    for t in state
        .store
        .owned(&API_TOKENS_BY_USER, user_id, &API_TOKENS)?
    {
        for r in t.realm_ids {
            out.entry(r).or_default().tokens += 1;
        }
    }
    for e in state.store.owned(&EVENTS_BY_USER, user_id, &EVENTS)? {
        for r in e.realm_ids {
            out.entry(r).or_default().events += 1;
        }
    }
    Ok(out)
}

/// realms.list
#[utoipa::path(get, path = "/api/v1/realms/", tag = "realms", operation_id = "realms.list",
    params(RealmsQuery),
    responses((status = 200, description = "Realm ids used by the caller's tokens and events", body = Value)),
    security(("bearer" = [])))]
pub async fn list_realms(
    State(state): State<AppState>,
    caller: Authed<Realms>,
    ApiQuery(q): ApiQuery<RealmsQuery>,
) -> ApiResult<Envelope> {
    let user_id = caller.user.id.clone();
    let realms = blocking(&state, move |s| realms_of(s, &user_id)).await?;
    let ids: Vec<&String> = realms.keys().collect();
    let mut data = json!({ "realm_ids": ids, "total": realms.len() });
    if q.include_usage.unwrap_or(false) {
        let usage: Map<String, Value> = realms
            .iter()
            .map(|(k, u)| (k.clone(), json!({"tokens": u.tokens, "events": u.events})))
            .collect();
        data["usage"] = Value::Object(usage);
    }
    Ok(ok("Realms", data))
}
