//! Administrative operations (`hoody-api admin ...`).
//!
//! sled admits one process per store. When `serve` is running it owns the
//! store, so it also listens on `<data-dir>/admin.sock` (mode 0600: only
//! the user running the server, or root, can connect) and admin commands
//! go through that socket. When no server runs, the command opens the store
//! itself. Either way the same [`Operation`] runs against an [`AppState`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::state::AppState;

/// One admin operation, as sent over the socket.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    CreateUser {
        email: String,
        password: String,
        admin: bool,
    },
    Backup {
        path: PathBuf,
    },
    CreateNodeToken {
        #[serde(default)]
        name: Option<String>,
    },
    ListNodeTokens,
    RevokeNodeToken {
        id: String,
    },
    SetStaticRoutes {
        routes: dataplane::config::RoutesFile,
    },
}

/// Runs an operation and returns a JSON summary. What an operation wrote is on disk
/// before it answers: an operator who created a node token and then stops the
/// server (even with `kill -9`) must still find it, and the store otherwise
/// flushes on its own schedule (`flush_every_ms`).
pub async fn execute(state: &AppState, op: Operation) -> Result<Value, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let answer = run(&state, op)?;
        state.store.flush()?;
        Ok(answer)
    })
    .await
    .map_err(ApiError::internal)?
}

fn run(state: &AppState, op: Operation) -> Result<Value, ApiError> {
    match op {
        Operation::CreateUser {
            email,
            password,
            admin,
        } => {
            let user = crate::auth::service::create_verified_user(state, &email, &password, admin)?;
            Ok(json!({"id": user.id, "email": user.email, "is_admin": user.is_admin}))
        }
        Operation::Backup { path } => {
            let records = crate::store::export_to_file(&state.store, &path)?;
            Ok(json!({"path": path, "records": records}))
        }
        Operation::CreateNodeToken { name } => {
            let made = crate::nodes::service::create(state, name)?;
            Ok(serde_json::to_value(made).map_err(ApiError::internal)?)
        }
        Operation::ListNodeTokens => {
            let tokens = crate::nodes::service::list(state)?;
            let listed: Vec<Value> = tokens
                .into_iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "name": t.name,
                        "prefix": t.prefix,
                        "created_at": t.created_at,
                        "status": state.nodes.status(&t.id),
                    })
                })
                .collect();
            Ok(json!({"published_version": state.publisher.version(), "nodes": listed}))
        }
        Operation::RevokeNodeToken { id } => {
            let gone = crate::nodes::service::revoke(state, &id)?;
            Ok(json!({"id": gone.id, "name": gone.name, "revoked": true}))
        }
        Operation::SetStaticRoutes { routes } => crate::proxy::static_routes::set(state, routes),
    }
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Listens on the admin socket until `stop` turns true.
pub fn serve_socket(
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(&state.settings.data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot bind admin socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let app = Router::new()
        .route("/admin", post(handle))
        .with_state(state);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "admin socket stopped");
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn handle(
    State(state): State<AppState>,
    Json(op): Json<Operation>,
) -> Result<Json<Value>, ApiError> {
    execute(&state, op).await.map(Json)
}

/// Sends `op` to the running server's admin socket.
pub async fn call_socket(data_dir: &Path, op: &Operation) -> anyhow::Result<Value> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path)
        .await
        .with_context(|| format!("cannot reach the running server at {}", path.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let body = serde_json::to_vec(op)?;
    let req = hyper::Request::post("/admin")
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{}",
            value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("admin operation failed")
        );
    }
    Ok(value)
}

/// Whether the store is locked by a running server.
pub fn store_is_locked(err: &crate::store::StoreError) -> bool {
    match err {
        crate::store::StoreError::Sled(sled::Error::Io(e)) => {
            e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
        }
        _ => false,
    }
}
