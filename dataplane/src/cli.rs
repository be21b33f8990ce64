//! `hoody-api dataplane`: a standalone data-plane node.
//!
//! Two sources of routes (see docs/dataplane.md):
//! * `--routes FILE`: a static routes file, reloaded on SIGHUP or when it
//!   changes; a bad file is rejected with a message and the running routes
//!   stay.
//! * `--control URL --token T`: follow a control plane's config stream
//!   ([`crate::remote`]), serving the last snapshot saved in `--state-dir`
//!   whenever the control plane is unreachable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;

use crate::config::{AccessLog, RoutesFile, Settings};
use crate::remote::{ControlUrl, FeedStatus, NodeConfig, SavedState};
use crate::DataPlane;

#[derive(Args, Debug)]
pub struct DataplaneArgs {
    /// JSON routes file to serve; reloaded on SIGHUP and when it changes.
    #[arg(long, env = "HOODY_ROUTES", conflicts_with = "control")]
    pub routes: Option<PathBuf>,
    /// Control plane to follow, `http://HOST:PORT` (instead of --routes).
    #[arg(long, env = "HOODY_CONTROL", requires = "token")]
    pub control: Option<String>,
    /// Node token from `hoody-api admin create-node-token`.
    #[arg(long, env = "HOODY_NODE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where a node fed by --control keeps its last snapshot and module cache.
    #[arg(long, env = "HOODY_STATE_DIR", default_value = "./dataplane-state")]
    pub state_dir: PathBuf,
    /// Keep-alive period asked of the control plane, in milliseconds; three
    /// silent periods mean the connection is dead.
    #[arg(long, env = "HOODY_KEEPALIVE_MS", default_value_t = 5000)]
    pub keepalive_ms: u64,
    /// Proxy listen address.
    #[arg(long, env = "HOODY_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "HOODY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Worker threads (0 = one per core).
    #[arg(long, env = "HOODY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Access log: `off`, `stdout`, or a file path.
    #[arg(long, env = "HOODY_ACCESS_LOG", default_value = "stdout")]
    pub access_log: String,
    /// Node name used in derived hostnames.
    #[arg(long, env = "HOODY_NODE", default_value = "local")]
    pub node: String,
    /// Base domain used in derived hostnames.
    #[arg(long, env = "HOODY_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,
    /// How often the routes file is checked for changes, in milliseconds.
    #[arg(long, env = "HOODY_ROUTES_POLL_MS", default_value_t = 1000)]
    pub routes_poll_ms: u64,
    /// Time a client has to send a complete request head, in milliseconds.
    #[arg(long, env = "HOODY_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time an upstream has to start answering (its response head), in
    /// milliseconds; past it the client gets a 504.
    #[arg(
        long,
        env = "HOODY_RESPONSE_HEADER_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub response_header_timeout_ms: u64,
    /// Grace period for in-flight requests at shutdown, in milliseconds.
    #[arg(long, env = "HOODY_DRAIN_MS", default_value_t = 30_000)]
    pub drain_ms: u64,
    /// Hook instances the engine reserves address space for up front (each
    /// slot: the memory cap plus guard pages); 0 maps memory per instance.
    #[arg(long, env = "HOODY_HOOK_INSTANCE_SLOTS", default_value_t = 1024)]
    pub hook_instance_slots: u32,
    /// Public key (64 hex digits) that signs owners' container claims: the
    /// control plane's `GET /api/v1/meta/public-key` (`public_key_hex`).
    /// A node fed by --control needs no flag: the key comes with every
    /// snapshot and replaces this one. Without a key this node accepts no
    /// owner claims and the groups decide.
    #[arg(long, env = "HOODY_OWNER_CLAIM_KEY")]
    pub owner_claim_key: Option<String>,
    /// Module directory (`<sha256>.wasm`, compiled artifacts beside them);
    /// modules named in the routes file are loaded from their own paths.
    #[arg(long, env = "HOODY_MODULE_DIR")]
    pub module_dir: Option<PathBuf>,
}

/// Where hook modules are read from: the flag, else (remote nodes) the
/// state directory's `modules/`, where fetched modules are verified.
fn module_dir(args: &DataplaneArgs, source: &Source) -> Option<PathBuf> {
    match (&args.module_dir, source) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Source::Control(cfg)) => Some(cfg.state_dir.join("modules")),
        (None, Source::File(_)) => None,
    }
}

/// Where the node's routes come from.
enum Source {
    File(PathBuf),
    Control(crate::remote::NodeConfig),
}

pub fn run(args: DataplaneArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let source = source(&args)?;
    let mut settings = Settings {
        node: args.node.clone(),
        base_domain: args.base_domain.clone(),
        workers: args.workers,
        access_log: parse_access_log(&args.access_log),
        owner_claim_key: owner_claim_key(args.owner_claim_key.as_deref())?,
        module_dir: module_dir(&args, &source),
        ..Settings::default()
    };
    settings.timeouts.drain_ms = args.drain_ms;
    settings.hooks.instance_slots = args.hook_instance_slots;
    settings.timeouts.header_read_ms = args.header_timeout_ms;
    settings.timeouts.upstream_response_header_ms = args.response_header_timeout_ms;
    let dp = DataPlane::new(settings);
    let feed = Arc::new(FeedStatus::default());
    let saved = match &source {
        Source::File(routes) => {
            let snapshot = load_routes(routes, &dp)?;
            dp.replace_all(&snapshot)
                .with_context(|| format!("routes file {}", routes.display()))?;
            None
        }
        Source::Control(cfg) => load_saved_snapshot(&dp, cfg),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = dp
            .bind(args.listen)
            .with_context(|| format!("binding {}", args.listen))?;
        tracing::info!(addr = %listener.local_addr(), routes = dp.routes().len(), "data plane listening");
        let extra_metrics = match source {
            Source::File(routes) => {
                tokio::spawn(reload_loop(dp.clone(), routes, Duration::from_millis(args.routes_poll_ms)));
                None
            }
            Source::Control(cfg) => {
                tokio::spawn(crate::remote::follow(dp.clone(), cfg, saved, feed.clone()));
                Some(feed)
            }
        };
        if let Some(addr) = args.metrics_listen {
            let l = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            tokio::spawn(serve_metrics(dp.clone(), extra_metrics, l));
        }
        dp.serve(vec![listener], shutdown_signal()).await?;
        tracing::info!("data plane stopped");
        Ok(())
    })
}

fn source(args: &DataplaneArgs) -> anyhow::Result<Source> {
    match (&args.routes, &args.control, &args.token) {
        (Some(routes), None, _) => Ok(Source::File(routes.clone())),
        (None, Some(control), Some(token)) => Ok(Source::Control(NodeConfig {
            control: ControlUrl::parse(control)?,
            token: token.clone(),
            state_dir: args.state_dir.clone(),
            keepalive: Duration::from_millis(args.keepalive_ms.clamp(200, 60_000)),
        })),
        (None, Some(_), None) => anyhow::bail!("--control needs --token NODE_TOKEN"),
        _ => anyhow::bail!("give either --routes FILE or --control URL --token NODE_TOKEN"),
    }
}

/// Serves the last snapshot saved on disk before the control plane is even
/// contacted; a snapshot this build refuses is logged and skipped.
fn load_saved_snapshot(dp: &DataPlane, cfg: &NodeConfig) -> Option<SavedState> {
    let saved = crate::remote::load_saved(cfg)?;
    match saved.apply(dp) {
        Ok(_) => {
            tracing::info!(
                version = saved.version,
                units = saved.snapshot.units.len(),
                "serving the saved snapshot"
            );
            Some(saved)
        }
        Err(e) => {
            tracing::error!("saved snapshot refused, waiting for the control plane: {e}");
            None
        }
    }
}

fn parse_access_log(s: &str) -> AccessLog {
    match s {
        "off" | "" => AccessLog::Off,
        "stdout" | "-" => AccessLog::Stdout,
        path => AccessLog::File(PathBuf::from(path)),
    }
}

/// Reads and parses a routes file into a snapshot. Module files named by
/// routes (`.wasm`, or `.wat` text) are read relative to the routes file and
/// compiled into the data plane's hook runtime.
pub fn load_routes(path: &Path, dp: &DataPlane) -> anyhow::Result<crate::config::Snapshot> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file: RoutesFile =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    file.into_snapshot_with(|module| {
        let module = base.join(module);
        let bytes = std::fs::read(&module).map_err(|e| format!("{}: {e}", module.display()))?;
        let wasm = if module.extension().is_some_and(|e| e == "wat") {
            let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
            hook_engine::wat_to_wasm(&text).map_err(|e| e.to_string())?
        } else {
            bytes
        };
        dp.hooks().register(&wasm)
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads on SIGHUP and when the file's mtime or size changes (polling:
/// works on every filesystem and survives editors that replace the file).
async fn reload_loop(dp: DataPlane, path: PathBuf, poll: Duration) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::warn!(%err, "SIGHUP reload unavailable");
            None
        }
    };
    let mut last = modified(&path);
    let mut tick = tokio::time::interval(poll.max(Duration::from_millis(50)));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = modified(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        match load_routes(&path, &dp).and_then(|s| dp.replace_all(&s).map_err(anyhow::Error::from))
        {
            Ok(version) => tracing::info!(version, routes = dp.routes().len(), "routes reloaded"),
            Err(err) => {
                tracing::error!("routes reload rejected, keeping the previous routes: {err:#}")
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down, draining in-flight requests");
}

/// A minimal `/metrics` endpoint for standalone nodes.
async fn serve_metrics(
    dp: DataPlane,
    feed: Option<Arc<FeedStatus>>,
    listener: tokio::net::TcpListener,
) {
    use http_body_util::Full;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let dp = dp.clone();
        let feed = feed.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let dp = dp.clone();
                    let feed = feed.clone();
                    async move {
                        let (status, body) = if req.uri().path() == "/metrics" {
                            let mut text = dp.render_metrics();
                            if let Some(feed) = &feed {
                                text.push_str(&feed.render());
                            }
                            (http::StatusCode::OK, text)
                        } else {
                            (http::StatusCode::NOT_FOUND, String::new())
                        };
                        let mut resp = http::Response::new(Full::new(bytes::Bytes::from(body)));
                        *resp.status_mut() = status;
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The owner-claim key as given, refused unless it is 32 bytes of hex: a
/// mistyped key would otherwise silently turn owner access off.
fn owner_claim_key(key: Option<&str>) -> anyhow::Result<Option<String>> {
    match key.map(str::trim) {
        None | Some("") => Ok(None),
        Some(k) if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(k.to_ascii_lowercase()))
        }
        Some(_) => anyhow::bail!(
            "--owner-claim-key must be 64 hex digits (meta.getPublicKey's public_key_hex)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::owner_claim_key;

    #[test]
    fn owner_claim_key_must_be_32_bytes_of_hex() {
        let key = "AB".repeat(32);
        assert_eq!(owner_claim_key(Some(&key)).unwrap(), Some("ab".repeat(32)));
        assert_eq!(owner_claim_key(None).unwrap(), None);
        assert!(owner_claim_key(Some("abcd")).is_err());
        assert!(owner_claim_key(Some(&"zz".repeat(32))).is_err());
    }
}
