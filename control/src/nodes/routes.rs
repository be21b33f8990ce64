//! HTTP routes for remote data-plane nodes, authenticated with a node
//! token. They are mounted outside the user pipeline (see `app::router`):
//! a node is not a user, must not be rate limited like one, and a user
//! credential must never open them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use dataplane::feed::{Ack, Frame, NodeSettings};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::{ok, ApiJson, ApiQuery, Envelope};

use super::model::{NodeToken, NODE_TOKENS};
use super::service;

/// Keep-alive period when the node asks for none, and the bounds of what
/// it may ask.
const KEEPALIVE_DEFAULT_MS: u64 = 5_000;
const KEEPALIVE_MIN_MS: u64 = 200;
const KEEPALIVE_MAX_MS: u64 = 60_000;
/// Frames queued for a slow node before the writer waits on it.
const QUEUED_FRAMES: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/nodes/config/stream", get(stream))
        .route("/api/v1/nodes/ack", post(ack))
        .route("/api/v1/nodes/modules/{sha256}", get(module))
}

/// The calling node, from `Authorization: Bearer hdyn_…`. As the first
/// extractor of a handler it answers 401 before anything else is looked at.
pub struct Node(pub NodeToken);

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        service::authenticate(state, &parts.headers).map(Node)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    #[serde(default, deserialize_with = "crate::wire::lenient::opt_u64")]
    keepalive_ms: Option<u64>,
}

/// The config stream: NDJSON frames (`dataplane::feed::Frame`), a snapshot
/// first, then every published change, keep-alives in between.
async fn stream(
    Node(node): Node,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let ms = query.keepalive_ms.unwrap_or(KEEPALIVE_DEFAULT_MS);
    if !(KEEPALIVE_MIN_MS..=KEEPALIVE_MAX_MS).contains(&ms) {
        return Err(ApiError::field(
            "keepalive_ms",
            format!("must be between {KEEPALIVE_MIN_MS} and {KEEPALIVE_MAX_MS}"),
        ));
    }
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let (tx, rx) = mpsc::channel(QUEUED_FRAMES);
    tokio::spawn(feed(state, node, address, tx, Duration::from_millis(ms)));
    let mut response = axum::body::Body::new(FrameBody(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Writes frames for one node until it goes away, its token is revoked or
/// the server stops.
async fn feed(
    state: AppState,
    node: NodeToken,
    address: Option<String>,
    tx: mpsc::Sender<Bytes>,
    keepalive: Duration,
) {
    let _open = state.nodes.connected(&node, address);
    let mut stopping = state.nodes.stopping();
    if *stopping.borrow_and_update() {
        return;
    }
    let mut sub = state.publisher.subscribe();
    let mut version = sub.version;
    if send_snapshot(&state, &tx, &mut sub).await.is_err() {
        return;
    }
    tracing::info!(node = %node.name, version, "node subscribed");
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    loop {
        let frame = tokio::select! {
            change = sub.changes.recv() => match change {
                Ok(change) => {
                    version = change.version;
                    Frame::Change { version, delta: change.delta.clone() }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(node = %node.name, missed, "node fell behind; sending a fresh snapshot");
                    sub = state.publisher.subscribe();
                    version = sub.version;
                    if send_snapshot(&state, &tx, &mut sub).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if !still_valid(&state, &node) {
                    tracing::info!(node = %node.name, "node token revoked; closing its stream");
                    return;
                }
                Frame::Keepalive { version }
            }
            // Only ever set to true; a dropped sender means the same.
            _ = stopping.changed() => return,
            _ = tx.closed() => return,
        };
        if send(&tx, &frame).await.is_err() {
            return;
        }
    }
}

fn still_valid(state: &AppState, node: &NodeToken) -> bool {
    // A store error is not a revocation: keep the node fed.
    !matches!(state.store.get(&NODE_TOKENS, &node.id), Ok(None))
}

async fn send_snapshot(
    state: &AppState,
    tx: &mpsc::Sender<Bytes>,
    sub: &mut crate::publish::Subscription,
) -> Result<(), ()> {
    let frame = Frame::Snapshot {
        epoch: state.nodes.epoch().to_string(),
        version: sub.version,
        // The embedded proxy's key is the one that signs claims here.
        settings: NodeSettings {
            owner_claim_key: state.dataplane.settings().owner_claim_key.clone(),
        },
        snapshot: std::mem::take(&mut sub.snapshot),
    };
    send(tx, &frame).await
}

async fn send(tx: &mpsc::Sender<Bytes>, frame: &Frame) -> Result<(), ()> {
    let mut line = serde_json::to_vec(frame).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a config frame");
    })?;
    line.push(b'\n');
    tx.send(Bytes::from(line)).await.map_err(|_| ())
}

/// The response body: whatever the feed task queues, until it stops.
struct FrameBody(mpsc::Receiver<Bytes>);

impl http_body::Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A node reports the last version it applied (and whether it refused one).
async fn ack(
    Node(node): Node,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Ack>,
) -> ApiResult<Envelope> {
    state.nodes.acked(&node, &body);
    Ok(ok(
        "Acknowledged",
        json!({
            "version": body.version,
            "published_version": state.publisher.version(),
            "epoch": state.nodes.epoch(),
        }),
    ))
}

/// The bytes of a hook module, by content address, from
/// `<data-dir>/modules/<sha256>.wasm`.
async fn module(
    Node(_node): Node,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(ApiError::field("sha256", "must be 64 lowercase hex digits"));
    }
    let path = crate::modules::module_dir(&state.settings.data_dir).join(format!("{sha256}.wasm"));
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound("module"))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/wasm"),
        )],
        bytes,
    )
        .into_response())
}
