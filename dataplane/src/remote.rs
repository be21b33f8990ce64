//! A data-plane node fed by a remote control plane
//! (`hoody-api dataplane --control URL --token T`).
//!
//! The node subscribes to the control plane's config stream ([`crate::feed`]),
//! applies the snapshot with `replace_all` and each change with `apply`,
//! strictly in version order, writes what it applied to
//! `<state-dir>/snapshot.json` (temp file + rename, so a crash leaves the
//! old or the new file, never half of one), then acknowledges the version.
//!
//! Failure behaviour: on start the saved snapshot is served before the
//! control plane is even contacted; while the control plane is unreachable
//! the node keeps serving what it has and reconnects with capped
//! exponential backoff; every reconnection starts with a full snapshot, so
//! nothing missed in between is lost. A gap in versions, a malformed frame
//! or silence for three keep-alive periods drops the connection and
//! resynchronises the same way.
//!
//! The node-wide settings of each snapshot (the owner-claim key) are
//! applied with it and saved with it, so owner claims keep passing on a
//! node restarted while its control plane is down.
//!
//! Hook modules named by a unit (`modules: {name: {sha256, size}}`) are
//! fetched into `<state-dir>/modules/<sha256>.wasm` and verified before the
//! unit is applied; a unit whose module cannot be fetched is not applied.
//!
//! What this module must never do: depend on the control plane's crate
//! (the node speaks only the wire format in `feed`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::{ContainerUnit, Delta, ModuleRef, Snapshot};
use crate::feed::{Ack, Frame, NodeSettings, ACK_PATH, MODULES_PATH, STREAM_PATH};
use crate::DataPlane;

/// The longest line the node accepts from the stream (a snapshot of a
/// large control plane is one line).
const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;
/// Largest module the node downloads.
const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Time allowed to connect and get response headers from the control plane.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the control plane is: `http://host:port[/prefix]`.
#[derive(Clone, Debug)]
pub struct ControlUrl {
    /// `host:port`, what the TCP connection dials.
    authority: String,
    /// Path prefix in front of `/api/v1` (empty for a bare server).
    prefix: String,
}

impl ControlUrl {
    pub fn parse(text: &str) -> anyhow::Result<ControlUrl> {
        let uri: http::Uri = text
            .parse()
            .with_context(|| format!("--control {text:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!(
                "--control: scheme {other:?} is not supported; use http:// (over a private network or a tunnel)"
            ),
            None => bail!("--control {text:?} needs a scheme: http://HOST:PORT"),
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--control {text:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(ControlUrl {
            authority: format!("{}:{port}", authority.host()),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// How this node reaches its control plane.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub control: ControlUrl,
    /// The node token (`hoody-api admin create-node-token`).
    pub token: String,
    /// Holds `snapshot.json` and `modules/`.
    pub state_dir: PathBuf,
    /// Keep-alive period asked of the control plane.
    pub keepalive: Duration,
}

impl NodeConfig {
    fn snapshot_path(&self) -> PathBuf {
        self.state_dir.join("snapshot.json")
    }

    /// Where a verified module lives once fetched.
    pub fn module_path(&self, sha256: &str) -> PathBuf {
        self.state_dir
            .join("modules")
            .join(format!("{sha256}.wasm"))
    }
}

/// The last-known-good state, as written to `<state-dir>/snapshot.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SavedState {
    pub epoch: String,
    pub version: u64,
    /// Absent in files written before settings travelled with snapshots.
    #[serde(default)]
    pub settings: NodeSettings,
    pub snapshot: Snapshot,
}

impl SavedState {
    /// Serves this state: its units with its owner-claim key.
    pub fn apply(&self, dp: &DataPlane) -> Result<u64, crate::ConfigError> {
        dp.routes()
            .replace_all_with_owner_key(&self.snapshot, self.settings.owner_claim_key.as_deref())
    }
}

/// The feed's health, for the node's `/metrics`.
#[derive(Default)]
pub struct FeedStatus {
    connected: AtomicBool,
    version: AtomicU64,
}

impl FeedStatus {
    /// Prometheus lines appended to the data plane's own series.
    pub fn render(&self) -> String {
        format!(
            "# HELP hoody_node_feed_connected Whether the config stream from the control plane is up.\n\
             # TYPE hoody_node_feed_connected gauge\n\
             hoody_node_feed_connected {}\n\
             # HELP hoody_node_feed_version Control-plane config version this node has applied.\n\
             # TYPE hoody_node_feed_version gauge\n\
             hoody_node_feed_version {}\n",
            u8::from(self.connected.load(Ordering::Relaxed)),
            self.version.load(Ordering::Relaxed)
        )
    }
}

/// Reads the saved state; `None` when there is none. A file that does not
/// parse is reported and ignored: the node then starts empty and waits for
/// the control plane rather than serving something it cannot trust.
pub fn load_saved(cfg: &NodeConfig) -> Option<SavedState> {
    let path = cfg.snapshot_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the saved snapshot");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(saved) => Some(saved),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "saved snapshot is unreadable; ignoring it");
            None
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the new
/// one: temp file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What the node has applied, kept to write snapshots and check versions.
struct Applied {
    epoch: String,
    version: u64,
    settings: NodeSettings,
    units: BTreeMap<String, ContainerUnit>,
}

impl Applied {
    fn saved(&self) -> SavedState {
        SavedState {
            epoch: self.epoch.clone(),
            version: self.version,
            settings: self.settings.clone(),
            snapshot: Snapshot {
                units: self.units.values().cloned().collect(),
            },
        }
    }
}

/// Follows the control plane forever: connect, apply, persist, acknowledge;
/// on any failure keep the routes, back off and resynchronise.
pub async fn follow(
    dp: DataPlane,
    cfg: NodeConfig,
    saved: Option<SavedState>,
    status: Arc<FeedStatus>,
) {
    let saved = saved.unwrap_or_default();
    status.version.store(saved.version, Ordering::Relaxed);
    let mut applied = Applied {
        epoch: saved.epoch,
        version: saved.version,
        settings: saved.settings,
        units: saved
            .snapshot
            .units
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect(),
    };
    let (acks, ack_rx) = watch::channel(None::<Ack>);
    tokio::spawn(ack_loop(cfg.clone(), ack_rx));
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut synced = false;
        let outcome = session(&dp, &cfg, &mut applied, &acks, &status, &mut synced).await;
        status.connected.store(false, Ordering::Relaxed);
        match outcome {
            Ok(()) => tracing::warn!("config stream ended; reconnecting"),
            Err(e) => tracing::warn!("config stream failed, serving the last snapshot: {e:#}"),
        }
        if synced {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// 75–100 % of `d`, so nodes restarted together do not reconnect in step.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64(0.75 + f64::from(nanos % 1000) / 4000.0)
}

/// One connection to the stream, until it fails or ends.
async fn session(
    dp: &DataPlane,
    cfg: &NodeConfig,
    applied: &mut Applied,
    acks: &watch::Sender<Option<Ack>>,
    status: &FeedStatus,
    synced: &mut bool,
) -> anyhow::Result<()> {
    let path = format!(
        "{}{STREAM_PATH}?keepalive_ms={}",
        cfg.control.prefix,
        cfg.keepalive.as_millis()
    );
    let resp = send(cfg, http::Method::GET, &path, None).await?;
    if resp.status() != http::StatusCode::OK {
        let code = resp.status();
        let body = read_limited(resp.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        bail!(
            "control plane answered {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    status.connected.store(true, Ordering::Relaxed);
    tracing::info!(control = %cfg.control.authority, "config stream connected");
    let silence = cfg.keepalive * 3;
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let frame: Frame = serde_json::from_slice(line).context("malformed frame")?;
            let ack = handle(dp, cfg, applied, frame, synced).await?;
            status.version.store(applied.version, Ordering::Relaxed);
            if let Some(ack) = ack {
                acks.send_replace(Some(ack));
            }
        }
        if buf.len() > MAX_FRAME_BYTES {
            bail!("a frame is larger than {MAX_FRAME_BYTES} bytes");
        }
        let next = tokio::time::timeout(silence, body.frame())
            .await
            .map_err(|_| anyhow::anyhow!("no frame for {silence:?}; the connection looks dead"))?;
        match next {
            None => return Ok(()),
            Some(frame) => {
                if let Ok(data) = frame.context("reading the stream")?.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Applies one frame; returns the acknowledgement to send.
async fn handle(
    dp: &DataPlane,
    cfg: &NodeConfig,
    applied: &mut Applied,
    frame: Frame,
    synced: &mut bool,
) -> anyhow::Result<Option<Ack>> {
    match frame {
        Frame::Snapshot {
            epoch,
            version,
            settings,
            snapshot,
        } => {
            for unit in &snapshot.units {
                ensure_modules(cfg, unit).await?;
            }
            dp.routes()
                .replace_all_with_owner_key(&snapshot, settings.owner_claim_key.as_deref())
                .context("the control plane's snapshot was refused")?;
            applied.epoch = epoch;
            applied.version = version;
            if settings.owner_claim_key.is_some() {
                applied.settings = settings;
            }
            applied.units = snapshot
                .units
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect();
            persist(cfg, applied).await?;
            *synced = true;
            tracing::info!(version, units = applied.units.len(), "snapshot applied");
            Ok(Some(ack(applied, None)))
        }
        Frame::Change { version, delta } => {
            if !*synced {
                bail!("a change arrived before the snapshot");
            }
            if version != applied.version + 1 {
                bail!(
                    "version gap: have {}, got {version}; resynchronising",
                    applied.version
                );
            }
            let error = match apply_change(dp, cfg, &delta).await {
                Ok(()) => {
                    match delta {
                        Delta::Upsert { unit } => {
                            applied.units.insert(unit.id.clone(), unit);
                        }
                        Delta::Remove { id } => {
                            applied.units.remove(&id);
                        }
                    }
                    None
                }
                Err(e) => {
                    tracing::error!(version, "change refused, keeping the unit as it was: {e:#}");
                    Some(format!("{e:#}"))
                }
            };
            applied.version = version;
            persist(cfg, applied).await?;
            Ok(Some(ack(applied, error)))
        }
        Frame::Keepalive { version } => {
            if *synced && version != applied.version {
                bail!(
                    "keep-alive at version {version} but applied {}; resynchronising",
                    applied.version
                );
            }
            // Re-acknowledging tells the control plane the node is alive.
            Ok(Some(ack(applied, None)))
        }
    }
}

async fn apply_change(dp: &DataPlane, cfg: &NodeConfig, delta: &Delta) -> anyhow::Result<()> {
    if let Delta::Upsert { unit } = delta {
        ensure_modules(cfg, unit).await?;
    }
    dp.apply(delta)?;
    Ok(())
}

fn ack(applied: &Applied, error: Option<String>) -> Ack {
    Ack {
        version: applied.version,
        epoch: applied.epoch.clone(),
        error,
    }
}

async fn persist(cfg: &NodeConfig, applied: &Applied) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(&applied.saved())?;
    let path = cfg.snapshot_path();
    tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
        .await?
        .context("cannot write the snapshot to disk")
}

/// Sends the newest acknowledgement whenever it changes; acknowledgements
/// are cumulative, so skipping intermediate ones loses nothing.
async fn ack_loop(cfg: NodeConfig, mut rx: watch::Receiver<Option<Ack>>) {
    while rx.changed().await.is_ok() {
        let Some(ack) = rx.borrow_and_update().clone() else {
            continue;
        };
        let Ok(body) = serde_json::to_vec(&ack) else {
            continue;
        };
        let path = format!("{}{ACK_PATH}", cfg.control.prefix);
        match send(&cfg, http::Method::POST, &path, Some(body)).await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::warn!(status = %resp.status(), "acknowledgement refused"),
            Err(e) => tracing::debug!("acknowledgement not delivered: {e:#}"),
        }
    }
}

/// Makes sure every module `unit` names is in the cache with the right
/// content, fetching the missing ones.
async fn ensure_modules(cfg: &NodeConfig, unit: &ContainerUnit) -> anyhow::Result<()> {
    for (name, module) in &unit.modules {
        if !is_sha256(&module.sha256) {
            bail!(
                "unit {}: module {name}: sha256 is not 64 lowercase hex digits",
                unit.id
            );
        }
        let path = cfg.module_path(&module.sha256);
        if tokio::fs::metadata(&path).await.ok().map(|m| m.len()) == Some(module.size) {
            continue;
        }
        fetch_module(cfg, module, &path)
            .await
            .with_context(|| format!("unit {}: module {name} ({})", unit.id, module.sha256))?;
    }
    Ok(())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn fetch_module(cfg: &NodeConfig, module: &ModuleRef, path: &Path) -> anyhow::Result<()> {
    if module.size > MAX_MODULE_BYTES {
        bail!("{} bytes is more than the node accepts", module.size);
    }
    let url = format!("{}{MODULES_PATH}/{}", cfg.control.prefix, module.sha256);
    let resp = send(cfg, http::Method::GET, &url, None).await?;
    if resp.status() != http::StatusCode::OK {
        bail!("control plane answered {}", resp.status());
    }
    let bytes = read_limited(resp.into_body(), module.size as usize).await?;
    if bytes.len() as u64 != module.size {
        bail!("got {} bytes, expected {}", bytes.len(), module.size);
    }
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != module.sha256 {
        bail!("content hashes to {digest}");
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
        .await?
        .context("cannot write the module to the cache")?;
    Ok(())
}

/// Reads a body, refusing more than `limit` bytes.
async fn read_limited(mut body: hyper::body::Incoming, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                bail!("body larger than {limit} bytes");
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// One request on a new connection to the control plane, authenticated
/// with the node token; returns once the response headers arrived.
async fn send(
    cfg: &NodeConfig,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&cfg.control.authority)
            .await
            .with_context(|| format!("cannot connect to {}", cfg.control.authority))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, cfg.control.authority.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {}", cfg.token));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        Ok::<_, anyhow::Error>(sender.send_request(req).await?)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("control plane did not answer within {REQUEST_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_url_takes_host_port_and_prefix() {
        let u = ControlUrl::parse("http://10.0.0.1:8080/base/").unwrap();
        assert_eq!(u.authority, "10.0.0.1:8080");
        assert_eq!(u.prefix, "/base");
        let u = ControlUrl::parse("http://control.internal").unwrap();
        assert_eq!(u.authority, "control.internal:80");
        assert_eq!(u.prefix, "");
        assert!(ControlUrl::parse("https://x").is_err());
        assert!(ControlUrl::parse("x:1").is_err());
    }

    #[test]
    fn saved_state_is_written_atomically_and_read_back() {
        let dir = std::env::temp_dir().join(format!("hoody-remote-unit-{}", std::process::id()));
        let cfg = NodeConfig {
            control: ControlUrl::parse("http://127.0.0.1:1").unwrap(),
            token: String::new(),
            state_dir: dir.clone(),
            keepalive: Duration::from_secs(1),
        };
        assert!(load_saved(&cfg).is_none());
        let saved = SavedState {
            epoch: "e".into(),
            version: 4,
            settings: NodeSettings {
                owner_claim_key: Some("ab".repeat(32)),
            },
            snapshot: Snapshot::default(),
        };
        write_atomically(&cfg.snapshot_path(), &serde_json::to_vec(&saved).unwrap()).unwrap();
        assert_eq!(load_saved(&cfg), Some(saved));
        assert!(!cfg.snapshot_path().with_extension("tmp").exists());
        std::fs::write(cfg.snapshot_path(), b"{not json").unwrap();
        assert!(load_saved(&cfg).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
