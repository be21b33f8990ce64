//! `serve`: opens the state, binds the listeners, runs until SIGINT or
//! SIGTERM, then lets in-flight requests finish and flushes the store.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::settings::Settings;
use crate::state::AppState;

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

/// Runs the whole server until a shutdown signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    runtime::check_host().map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = AppState::open(settings.clone()).context("cannot open state")?;
    let rt = open_runtime(&settings).await?;
    state.set_runtime(std::sync::Arc::new(rt));
    // Routes before the proxy listens: it never answers from an empty table.
    let version = crate::proxy::compile::compile_all(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot compile the proxy configuration: {e}"))?;
    // After the full compile, which replaces every unit it does not know.
    crate::proxy::static_routes::publish_stored(&state)
        .map_err(|e| anyhow::anyhow!("cannot publish the static routes: {e}"))?;
    tracing::info!(version, "proxy configuration compiled");
    let api = TcpListener::bind(settings.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.api_listen))?;
    tracing::info!(addr = %settings.api_listen, "API listening");
    let proxy_listener = state
        .dataplane
        .bind(settings.proxy_listen)
        .with_context(|| format!("cannot listen on {}", settings.proxy_listen))?;
    tracing::info!(addr = %settings.proxy_listen, "proxy listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = crate::admin::serve_socket(state.clone(), stop_rx.clone())?;
    let jobs = tokio::spawn(background_jobs(state.clone(), stop_rx.clone()));
    let alias_expiry = tokio::spawn(alias_expiry(state.clone(), stop_rx.clone()));

    let service = crate::app::service(state.clone());
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(service);
    let mut api_stop = stop_rx.clone();
    let server = axum::serve(api, make).with_graceful_shutdown(async move {
        let _ = api_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    let proxy = state.dataplane.clone();
    let mut proxy_stop = stop_rx.clone();
    let proxy = tokio::spawn(async move {
        let stopped = async move {
            let _ = proxy_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = proxy.serve(vec![proxy_listener], stopped).await {
            tracing::error!(error = %e, "proxy stopped");
        }
    });

    shutdown_signal().await;
    let _ = stop_tx.send(true);
    // Config streams never finish on their own; end them so the API drains.
    state.nodes.close_all();
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(_) => tracing::info!("API drained"),
        Err(_) => tracing::warn!("grace period over; closing remaining connections"),
    }
    if tokio::time::timeout(grace, proxy).await.is_err() {
        tracing::warn!("proxy drain took longer than the grace period");
    }
    let _ = admin.await;
    jobs.abort();
    alias_expiry.abort();
    state.store.flush().context("cannot flush store")?;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// The runc driver under `<data-dir>/runtime`, on the configured bridge and subnet.
async fn open_runtime(settings: &Settings) -> anyhow::Result<runtime::RuncRuntime> {
    let mut config = runtime::RuntimeConfig::new(settings.data_dir.join("runtime"));
    config.network = runtime::NetworkConfig {
        bridge: settings.runtime_bridge.clone(),
        subnet: settings.runtime_subnet,
        masquerade: false,
    };
    // One cgroup parent per bridge, so servers sharing a host never clean up each
    // other's cgroups.
    if settings.runtime_bridge != "hoody0" {
        config.cgroup_parent = format!("hoody-{}", settings.runtime_bridge);
    }
    runtime::RuncRuntime::open(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the container runtime: {e}"))
}

/// Periodic upkeep: expired rate-limit windows, old activity, expired
/// snapshots and storage shares.
async fn background_jobs(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.limits.sweep();
                let st = state.clone();
                let _ = tokio::task::spawn_blocking(move || crate::activity::routes::prune(&st)).await;
                crate::containers::snapshots::expire(&state).await;
                crate::containers::shares::expire(&state).await;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Disables aliases as their `expires_at` passes. Short interval: the data
/// plane already answers 404 on time; this keeps records and events close.
async fn alias_expiry(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        crate::aliases::service::EXPIRY_INTERVAL_SECS,
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = crate::aliases::service::expire(&state).await {
                    tracing::warn!(error = %e, "alias expiry failed");
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}
