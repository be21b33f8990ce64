//! The data plane: a reverse proxy for container traffic.
//!
//! The control plane owns a [`DataPlane`] and feeds it [`config::Delta`]s;
//! the standalone `hoody-api dataplane` command feeds it a routes file or
//! follows a remote control plane's config stream ([`remote`]). A
//! request's path through the proxy is written out in [`proxy`]; the
//! threading model in [`listen`].
//!
//! This crate never depends on `control`.

pub mod access_log;
pub mod cli;
pub mod config;
pub mod downstream;
pub mod feed;
pub mod fields;
pub mod framing;
pub mod gate;
pub mod h2c;
pub mod hooks;
pub mod listen;
pub mod metrics;
pub mod prefixed;
pub mod proxy;
pub mod remote;
pub mod router;
pub mod sweep;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The `http` crate our public types use (`HeaderMap` in `gate::RequestFacts`).
pub use http;

pub use config::{ContainerUnit, Delta, Settings, Snapshot};
pub use listen::Listener;
pub use router::{ConfigError, RouteTable};

/// A handle on one data plane; clones share the same routes and metrics.
#[derive(Clone)]
pub struct DataPlane {
    settings: Arc<Settings>,
    table: Arc<RouteTable>,
    metrics: Arc<metrics::Metrics>,
}

impl DataPlane {
    pub fn new(settings: Settings) -> Self {
        Self {
            table: Arc::new(RouteTable::new(&settings)),
            settings: Arc::new(settings),
            metrics: Arc::new(metrics::Metrics::default()),
        }
    }

    /// Upserts or removes one unit atomically; returns the new version. On
    /// error nothing changed.
    pub fn apply(&self, delta: &Delta) -> Result<u64, ConfigError> {
        self.table.apply(delta)
    }

    /// Replaces every unit (startup, resynchronisation, file reload). On
    /// error nothing changed.
    pub fn replace_all(&self, snapshot: &Snapshot) -> Result<u64, ConfigError> {
        self.table.replace_all(snapshot)
    }

    /// Number of changes applied so far.
    pub fn version(&self) -> u64 {
        self.table.version()
    }

    pub fn routes(&self) -> &RouteTable {
        &self.table
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render(self.table.version(), self.table.len());
        text.push_str(&self.table.hooks().metrics_text());
        text
    }

    /// The hook runtime (module registration for standalone routes files).
    pub fn hooks(&self) -> &Arc<hooks::HookHost> {
        self.table.hooks()
    }

    /// Binds `addr` with one `SO_REUSEPORT` socket per worker.
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<Listener> {
        Listener::bind_reuseport(addr, listen::worker_count(&self.settings))
    }

    /// Serves `listeners` on the worker threads until `shutdown` resolves,
    /// then drains in-flight requests (up to `timeouts.drain_ms`).
    pub async fn serve(
        &self,
        listeners: Vec<Listener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let shared = listen::Shared {
            settings: self.settings.clone(),
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            sink: access_log::Sink::open(&self.settings.access_log)?,
        };
        listen::serve(shared, listeners, shutdown).await
    }
}
