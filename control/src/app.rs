//! The HTTP application: every route, and the middleware each request
//! passes through, in order:
//!
//! 1. request id (`x-request-id`, generated or taken from the client) and a
//!    tracing span with method, path and status;
//! 2. trailing-slash normalisation (the SDK sends some paths with one);
//! 3. `pipeline`: resolve credentials, apply the general rate limit, run
//!    the handler, record activity for authenticated callers.
//!
//! Unknown routes answer 404 JSON, wrong methods 405 JSON.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use crate::auth::principal::{self, AuthState, ClientIp};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest JSON body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API router, before slash normalisation.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(crate::auth::routes::routes())
        .merge(crate::users::routes::routes())
        .merge(crate::tokens::routes::routes())
        .merge(crate::events::routes::routes())
        .merge(crate::activity::routes::routes())
        .merge(crate::meta::routes::routes())
        .merge(crate::projects::routes::routes())
        .merge(crate::containers::routes::routes())
        .merge(crate::aliases::routes::routes())
        .merge(crate::proxy::routes::routes())
        .merge(crate::modules::routes::routes());
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), pipeline))
        // Added after the pipeline layer: probes are not rate limited, and
        // nodes authenticate with node tokens, not user credentials.
        .route("/health", get(health))
        .merge(crate::nodes::routes::routes())
        .route("/metrics", get(metrics))
        // Routes added after the first call need the JSON 405 too.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The service to serve: the router behind trailing-slash normalisation,
/// which must run before routing.
pub fn service(state: AppState) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router(state))
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text: the embedded data plane's series (requests, latency,
/// upstream errors, pool, routing table version) and the control plane's
/// config version, the number remote nodes acknowledge.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.dataplane.render_metrics();
    text.push_str(&format!(
        "# HELP hoody_config_version Configuration changes published by the control plane.\n\
         # TYPE hoody_config_version gauge\n\
         hoody_config_version {}\n",
        state.publisher.version()
    ));
    text.push_str(&state.nodes.render_metrics(state.publisher.version()));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

/// Takes the client's `x-request-id` when it is sane, else makes one; logs
/// the request with it and echoes it on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .or_else(|| HeaderValue::from_str(&new_request_id()).ok());
    let Some(id) = id else {
        return next.run(req).await;
    };
    req.headers_mut().insert("x-request-id", id.clone());
    let started = Instant::now();
    // Fields are only formatted when the span is enabled (log level info).
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %req.method(),
        path = req.uri().path()
    );
    let mut response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request done"
        )
    });
    response.headers_mut().insert("x-request-id", id);
    response
}

/// Credentials, the general rate limit, the handler, then the activity log.
async fn pipeline(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    req.extensions_mut().insert(ClientIp(ip));
    let auth = principal::resolve(&state, req.headers(), req.uri().query(), ip);
    let quota = match &auth {
        AuthState::Authenticated(p) => state.limits.per_credential.hit(&p.rate_key()),
        _ => state.limits.per_ip.hit(&format!("ip:{ip}")),
    };
    let quota = match quota {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let principal = match &auth {
        AuthState::Authenticated(p) => Some(p.clone()),
        _ => None,
    };
    // Activity needs these after the handler consumed the request; only
    // authenticated calls are recorded, so anonymous ones copy nothing.
    let seen = principal.is_some().then(|| {
        let user_agent = req
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (
            req.method().clone(),
            req.uri().path().to_owned(),
            user_agent,
        )
    });
    req.extensions_mut().insert(auth);
    let mut response = next.run(req).await;
    // A route with its own budget (signup, login, refresh) reports that one.
    if !response.headers().contains_key("x-ratelimit-limit") {
        quota.write_headers(response.headers_mut());
    }
    if let (Some(p), Some((method, path, user_agent))) = (principal, seen) {
        let status = response.status().as_u16();
        state
            .activity
            .record(&p, &method, &path, status, &user_agent);
    }
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get("content-type").map(|v| v.as_bytes()) != Some(b"application/json")
    {
        return ApiError::PayloadTooLarge.into_response();
    }
    response
}
