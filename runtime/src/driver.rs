//! `RuncRuntime`: the [`Runtime`] implementation on Debian's runc. It ties the pieces
//! together and owns the invariants: one operation at a time per container (an async
//! lock per id), every host resource recorded before it is created, and teardown that
//! is idempotent so a failed or interrupted delete can simply be retried.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::{IoContext, Result, RuntimeError};
use crate::host::{self, Reaper};
use crate::image::ImageStore;
use crate::network::{self, AddressPool, Attachment, NetworkConfig};
use crate::record::{short_key, ContainerDir, ContainerRecord};
use crate::runc::{Runc, RuncState, RuncStatus};
use crate::snapshot::{self, SnapshotInfo, SnapshotStore};
use crate::spec::{validate_id, ContainerSpec, EgressRule, NetworkPolicy};
use crate::stats::{ContainerStats, MemoryStats, NetworkStats};
use crate::status::{ContainerInfo, ContainerStatus};
use crate::{cgroup, firewall, oci, rootfs, ExecOutput, Runtime, SpecUpdate};

/// Where and how a runtime keeps its containers.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Container records, bundles, layers, snapshots, address leases, runc state.
    pub state_dir: PathBuf,
    /// Image store; may be shared by several runtimes.
    pub image_dir: PathBuf,
    pub network: NetworkConfig,
    /// cgroup parent of all containers (`/<parent>/<id>`).
    pub cgroup_parent: String,
    /// Image used when a spec names none.
    pub default_image: String,
    pub debian_mirror: String,
    /// Written to each container's /etc/resolv.conf.
    pub dns_servers: Vec<String>,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
}

impl RuntimeConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        RuntimeConfig {
            image_dir: state_dir.join("images"),
            state_dir,
            network: NetworkConfig::default(),
            cgroup_parent: "hoody".into(),
            default_image: "busybox".into(),
            debian_mirror: "http://deb.debian.org/debian".into(),
            dns_servers: vec!["1.1.1.1".into(), "8.8.8.8".into()],
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// The runc driver. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct RuncRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    runc: Runc,
    images: ImageStore,
    addresses: AddressPool,
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    reaper: Arc<Reaper>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn status_of(state: Option<&RuncState>) -> ContainerStatus {
    match state.map(|s| s.status) {
        Some(RuncStatus::Running | RuncStatus::Created | RuncStatus::Creating) => {
            ContainerStatus::Running
        }
        Some(RuncStatus::Paused) => ContainerStatus::Paused,
        Some(RuncStatus::Stopped) | None => ContainerStatus::Stopped,
    }
}

impl RuncRuntime {
    /// Opens (or creates) the runtime state, sets up the bridge, becomes child subreaper
    /// and adopts the containers a previous process left running.
    pub async fn open(config: RuntimeConfig) -> Result<Self> {
        host::check_host()?;
        config.network.validate()?;
        for dir in [
            config.state_dir.clone(),
            config.state_dir.join("containers"),
            config.state_dir.join("runc"),
            config.image_dir.clone(),
        ] {
            tokio::fs::create_dir_all(&dir).await.at(&dir)?;
        }
        host::become_subreaper()?;
        network::ensure_bridge(&config.network).await?;
        let addresses =
            AddressPool::open(config.state_dir.join("addresses.json"), &config.network)?;
        let reaper = Arc::new(Reaper::default());
        reaper.spawn();
        let runtime = RuncRuntime {
            inner: Arc::new(Inner {
                runc: Runc::new(config.state_dir.join("runc")),
                images: ImageStore::new(config.image_dir.clone(), config.debian_mirror.clone()),
                addresses,
                locks: std::sync::Mutex::new(HashMap::new()),
                reaper,
                config,
            }),
        };
        runtime.reconcile().await?;
        Ok(runtime)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The image store, e.g. to prebuild images at boot.
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    /// runc's state directory for this runtime.
    pub fn runc_root(&self) -> PathBuf {
        self.inner.runc.root().to_path_buf()
    }

    /// The container holding a leased address, if any (released addresses have none).
    pub fn address_holder(&self, address: std::net::Ipv4Addr) -> Option<String> {
        self.inner.addresses.holder(address)
    }

    /// The directory holding a container's files.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir(id).root
    }

    fn dir(&self, id: &str) -> ContainerDir {
        ContainerDir::new(&self.inner.config.state_dir.join("containers"), id)
    }

    async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Locks two containers in a fixed order so copy(a→b) and sync(b→a) cannot deadlock.
    async fn lock_pair(&self, a: &str, b: &str) -> (OwnedMutexGuard<()>, OwnedMutexGuard<()>) {
        if a <= b {
            let first = self.lock(a).await;
            (first, self.lock(b).await)
        } else {
            let second = self.lock(b).await;
            (self.lock(a).await, second)
        }
    }

    fn load(&self, id: &str) -> Result<(ContainerDir, ContainerRecord)> {
        validate_id(id).map_err(|_| RuntimeError::NotFound(id.to_string()))?;
        let dir = self.dir(id);
        let record = dir
            .load()?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        Ok((dir, record))
    }

    fn info(&self, record: &ContainerRecord, state: Option<&RuncState>) -> ContainerInfo {
        let status = status_of(state);
        ContainerInfo {
            id: record.spec.id.clone(),
            image: record.image.clone(),
            status,
            pid: state
                .filter(|_| status != ContainerStatus::Stopped)
                .map(|s| s.pid),
            address: record.network.address,
            spec: record.spec.clone(),
            created_at: record.created_at,
        }
    }

    /// Brings disk and runc back in line after a restart: running containers are adopted
    /// (network re-checked, init watched), dead ones cleaned, orphans of an interrupted
    /// create/delete removed, leases of vanished containers freed.
    async fn reconcile(&self) -> Result<()> {
        let ids = self.record_ids().await?;
        for runc_state in self.inner.runc.list().await? {
            if !ids.contains(&runc_state.id) {
                tracing::warn!(id = %runc_state.id, "removing runc container without record");
                self.inner.runc.delete(&runc_state.id).await?;
            }
        }
        for id in &ids {
            let _guard = self.lock(id).await;
            let Ok((dir, record)) = self.load(id) else {
                continue;
            };
            self.ensure_network(&record).await?;
            match self.inner.runc.state(id).await? {
                Some(state) if status_of(Some(&state)) != ContainerStatus::Stopped => {
                    self.inner.reaper.watch(state.pid);
                    tracing::info!(id = %id, pid = state.pid, "adopted running container");
                }
                _ => self.release_run_resources(&dir, &record).await?,
            }
        }
        self.inner
            .addresses
            .retain(|holder| ids.iter().any(|id| id == holder))
    }

    async fn record_ids(&self) -> Result<Vec<String>> {
        let containers = self.inner.config.state_dir.join("containers");
        let mut entries = tokio::fs::read_dir(&containers).await.at(&containers)?;
        let mut ids = Vec::new();
        while let Some(entry) = entries.next_entry().await.at(&containers)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_id(&name).is_ok() && entry.path().join("container.json").exists() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Re-creates the netns/veth if the host lost them (reboot) and re-applies the firewall.
    async fn ensure_network(&self, record: &ContainerRecord) -> Result<()> {
        let att = &record.network;
        if !att.netns_path().exists() || !network::interface_exists(&att.host_veth).await? {
            network::attach(&self.inner.config.network.bridge, att).await?;
            firewall::apply(&att.netns, &record.spec.network, &record.spec.egress_rules).await?;
        }
        Ok(())
    }

    fn attachment_for(&self, id: &str) -> Result<Attachment> {
        let key = short_key(&self.inner.config.state_dir, id);
        let address = self.inner.addresses.allocate(id)?;
        Ok(Attachment {
            netns: format!("hoody-{key}"),
            host_veth: format!("hv{key}"),
            address,
            prefix_len: self.inner.config.network.subnet.prefix_len(),
            gateway: self.inner.config.network.gateway()?,
        })
    }

    /// The container's DNS servers, or the runtime's default ones.
    async fn write_resolv_conf(&self, dir: &ContainerDir, spec: &ContainerSpec) -> Result<()> {
        let servers = if spec.dns_servers.is_empty() {
            &self.inner.config.dns_servers
        } else {
            &spec.dns_servers
        };
        let text: String = servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        tokio::fs::write(dir.resolv_conf(), text)
            .await
            .at(dir.resolv_conf())
    }

    /// Creates everything but the upper layer's content; on failure undoes what it did.
    async fn create_locked(&self, spec: ContainerSpec) -> Result<(ContainerDir, ContainerRecord)> {
        spec.validate()?;
        let dir = self.dir(&spec.id);
        if dir.load()?.is_some() {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        let reference = spec
            .image
            .clone()
            .unwrap_or_else(|| self.inner.config.default_image.clone());
        let image = self.inner.images.get(&reference).await?;
        tokio::fs::create_dir_all(&dir.root).await.at(&dir.root)?;
        let record = ContainerRecord {
            image: image.name.canonical(),
            network: self.attachment_for(&spec.id)?,
            cgroups_path: cgroup::container_path(&self.inner.config.cgroup_parent, &spec.id),
            created_at: now_secs(),
            spec,
        };
        dir.save(&record)?;
        let prepared = async {
            dir.layout().create_dirs().await?;
            self.write_resolv_conf(&dir, &record.spec).await?;
            network::attach(&self.inner.config.network.bridge, &record.network).await?;
            firewall::apply(
                &record.network.netns,
                &record.spec.network,
                &record.spec.egress_rules,
            )
            .await
        }
        .await;
        if let Err(e) = prepared {
            if let Err(cleanup) = self.teardown(&dir, &record).await {
                tracing::error!(id = %record.spec.id, error = %cleanup, "cleanup after failed create");
            }
            return Err(e);
        }
        Ok((dir, record))
    }

    async fn start_locked(
        &self,
        dir: &ContainerDir,
        record: &ContainerRecord,
    ) -> Result<ContainerInfo> {
        let id = record.spec.id.as_str();
        match self.inner.runc.state(id).await? {
            Some(s) if status_of(Some(&s)) != ContainerStatus::Stopped => {
                return Err(RuntimeError::AlreadyRunning(id.to_string()));
            }
            Some(_) => self.inner.runc.delete(id).await?,
            None => {}
        }
        for share in &record.spec.mounts {
            if !share.source.exists() {
                return Err(RuntimeError::InvalidSpec(format!(
                    "mount source {} does not exist",
                    share.source.display()
                )));
            }
        }
        let image = self.inner.images.get(&record.image).await?;
        self.ensure_network(record).await?;
        self.write_resolv_conf(dir, &record.spec).await?;
        let layout = dir.layout();
        layout.mount(&image.rootfs).await?;
        let started = self.run_container(dir, record, &image.config).await;
        match started {
            Ok(state) => {
                self.inner.reaper.watch(state.pid);
                Ok(self.info(record, Some(&state)))
            }
            Err(e) => {
                if let Err(cleanup) = self.release_run_resources(dir, record).await {
                    tracing::error!(id, error = %cleanup, "cleanup after failed start");
                }
                Err(e)
            }
        }
    }

    async fn run_container(
        &self,
        dir: &ContainerDir,
        record: &ContainerRecord,
        image: &crate::image::ImageConfig,
    ) -> Result<RuncState> {
        let id = record.spec.id.as_str();
        let layout = dir.layout();
        let netns_path = record.network.netns_path();
        let resolv = dir.resolv_conf();
        let config = oci::config(
            &record.spec,
            &oci::BundleContext {
                rootfs: &layout.merged,
                image,
                netns_path: &netns_path,
                cgroups_path: &record.cgroups_path,
                resolv_conf: &resolv,
            },
        );
        let config_path = dir.bundle().join("config.json");
        let json = serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::State {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        tokio::fs::write(&config_path, json)
            .await
            .at(&config_path)?;
        self.inner
            .runc
            .run_detached(id, dir.bundle(), &dir.pid_file(), &dir.log())
            .await?;
        // The pid file saves a `runc state` round trip; runc writes it before exiting.
        let pid_file = dir.pid_file();
        let pid = tokio::fs::read_to_string(&pid_file)
            .await
            .at(&pid_file)?
            .trim()
            .parse::<i32>()
            .map_err(|e| RuntimeError::Host(format!("bad pid file {}: {e}", pid_file.display())))?;
        Ok(RuncState {
            id: id.to_string(),
            pid,
            status: RuncStatus::Running,
        })
    }

    /// Removes runc state and the overlay mount of a container that is not running.
    async fn release_run_resources(
        &self,
        dir: &ContainerDir,
        record: &ContainerRecord,
    ) -> Result<()> {
        self.inner.runc.delete(&record.spec.id).await?;
        self.inner.reaper.reap();
        dir.layout().unmount().await?;
        cgroup::remove(&record.cgroups_path);
        Ok(())
    }

    async fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.inner.reaper.reap();
            let state = self.inner.runc.state(id).await?;
            if status_of(state.as_ref()) == ContainerStatus::Stopped {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// TERM, then KILL after `grace` (zero: KILL at once), then release resources.
    async fn stop_locked(
        &self,
        dir: &ContainerDir,
        record: &ContainerRecord,
        grace: Duration,
    ) -> Result<()> {
        let id = record.spec.id.as_str();
        let state = self.inner.runc.state(id).await?;
        match status_of(state.as_ref()) {
            ContainerStatus::Stopped if state.is_none() => {
                return Err(RuntimeError::NotRunning(id.to_string()));
            }
            // A frozen task only sees signals once thawed.
            ContainerStatus::Paused => self.inner.runc.resume(id).await?,
            _ => {}
        }
        let mut stopped = status_of(state.as_ref()) == ContainerStatus::Stopped;
        if !stopped && !grace.is_zero() {
            self.inner.runc.kill(id, "TERM").await?;
            stopped = self.wait_stopped(id, grace).await?;
        }
        if !stopped {
            self.inner.runc.kill(id, "KILL").await?;
            if !self.wait_stopped(id, Duration::from_secs(10)).await? {
                return Err(RuntimeError::Host(format!(
                    "container {id} survived SIGKILL"
                )));
            }
        }
        self.release_run_resources(dir, record).await
    }

    /// Releases every host resource of the container and its directory (idempotent).
    async fn teardown(&self, dir: &ContainerDir, record: &ContainerRecord) -> Result<()> {
        let id = record.spec.id.as_str();
        if let Some(state) = self.inner.runc.state(id).await? {
            // A frozen task only dies once thawed.
            if state.status == RuncStatus::Paused {
                self.inner.runc.resume(id).await?;
            }
            self.inner.runc.kill(id, "KILL").await?;
            self.wait_stopped(id, Duration::from_secs(10)).await?;
        }
        self.release_run_resources(dir, record).await?;
        for mount in rootfs::mounts_under(&dir.root)? {
            tracing::warn!(mount = %mount.display(), "unmounting leftover");
            rootfs::RootfsLayout {
                upper: dir.root.join("upper"),
                work: dir.root.join("work"),
                merged: mount,
            }
            .unmount()
            .await?;
        }
        network::detach(&record.network).await?;
        self.inner.addresses.release(id)?;
        crate::image::remove_dir_if_exists(&dir.root).await
    }

    async fn current_state(&self, id: &str) -> Result<Option<RuncState>> {
        self.inner.runc.state(id).await
    }

    /// Pauses a running container for the duration of `f` so its upper layer is stable.
    async fn with_frozen<T>(
        &self,
        id: &str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let state = self.current_state(id).await?;
        let freeze = status_of(state.as_ref()) == ContainerStatus::Running;
        if freeze {
            self.inner.runc.pause(id).await?;
        }
        let result = f.await;
        if freeze {
            self.inner.runc.resume(id).await?;
        }
        result
    }

    /// Replaces `target`'s upper layer with a copy of `source`'s, restarting `target`
    /// around it if it runs.
    async fn copy_upper_into(
        &self,
        source: (&ContainerDir, &ContainerRecord),
        target: (&ContainerDir, &ContainerRecord),
    ) -> Result<()> {
        let was_running = status_of(self.current_state(&target.1.spec.id).await?.as_ref())
            != ContainerStatus::Stopped;
        if was_running {
            self.stop_locked(target.0, target.1, self.inner.config.stop_grace)
                .await?;
        }
        let (from, to) = (source.0.layout(), target.0.layout());
        self.with_frozen(
            &source.1.spec.id,
            rootfs::copy_layer(&from.upper, &to.upper),
        )
        .await?;
        to.reset_work().await?;
        if was_running {
            self.start_locked(target.0, target.1).await?;
        }
        Ok(())
    }

    fn update_record(
        &self,
        dir: &ContainerDir,
        record: &mut ContainerRecord,
        update: SpecUpdate,
    ) -> Result<()> {
        let mut spec = record.spec.clone();
        if let Some(env) = update.env {
            spec.env = env;
        }
        if let Some(limits) = update.limits {
            spec.limits = limits;
        }
        if let Some(mounts) = update.mounts {
            spec.mounts = mounts;
        }
        if let Some(hostname) = update.hostname {
            spec.hostname = hostname;
        }
        if let Some(command) = update.command {
            spec.command = command;
        }
        if let Some(dns_servers) = update.dns_servers {
            spec.dns_servers = dns_servers;
        }
        spec.validate()?;
        record.spec = spec;
        dir.save(record)
    }
}

#[async_trait]
impl Runtime for RuncRuntime {
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo> {
        spec.validate()?;
        let _guard = self.lock(&spec.id).await;
        let (_, record) = self.create_locked(spec).await?;
        Ok(self.info(&record, None))
    }

    async fn start(&self, id: &str) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (dir, record) = self.load(id)?;
        self.start_locked(&dir, &record).await
    }

    async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (dir, record) = self.load(id)?;
        let grace = grace.unwrap_or(self.inner.config.stop_grace);
        self.stop_locked(&dir, &record, grace).await?;
        Ok(self.info(&record, None))
    }

    async fn force_stop(&self, id: &str) -> Result<ContainerInfo> {
        self.stop(id, Some(Duration::ZERO)).await
    }

    async fn restart(&self, id: &str) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (dir, record) = self.load(id)?;
        match self
            .stop_locked(&dir, &record, self.inner.config.stop_grace)
            .await
        {
            Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&dir, &record).await
    }

    async fn pause(&self, id: &str) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (_, record) = self.load(id)?;
        let state = self.current_state(id).await?;
        match status_of(state.as_ref()) {
            ContainerStatus::Stopped => return Err(RuntimeError::NotRunning(id.to_string())),
            ContainerStatus::Running => self.inner.runc.pause(id).await?,
            ContainerStatus::Paused => {}
        }
        Ok(self.info(&record, self.current_state(id).await?.as_ref()))
    }

    async fn resume(&self, id: &str) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (_, record) = self.load(id)?;
        let state = self.current_state(id).await?;
        match status_of(state.as_ref()) {
            ContainerStatus::Stopped => return Err(RuntimeError::NotRunning(id.to_string())),
            ContainerStatus::Paused => self.inner.runc.resume(id).await?,
            ContainerStatus::Running => {}
        }
        Ok(self.info(&record, self.current_state(id).await?.as_ref()))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let _guard = self.lock(id).await;
        let (dir, record) = self.load(id)?;
        self.teardown(&dir, &record).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let (_, record) = self.load(id)?;
        Ok(self.info(&record, self.current_state(id).await?.as_ref()))
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let states = self.inner.runc.list().await?;
        let mut out = Vec::new();
        for id in self.record_ids().await? {
            let Ok((_, record)) = self.load(&id) else {
                continue;
            };
            let state = states.iter().find(|s| s.id == id);
            out.push(self.info(&record, state));
        }
        Ok(out)
    }

    async fn update(&self, id: &str, update: SpecUpdate) -> Result<ContainerInfo> {
        let _guard = self.lock(id).await;
        let (dir, mut record) = self.load(id)?;
        self.update_record(&dir, &mut record, update)?;
        Ok(self.info(&record, self.current_state(id).await?.as_ref()))
    }

    async fn copy(&self, source: &str, spec: ContainerSpec) -> Result<ContainerInfo> {
        spec.validate()?;
        if spec.id == source {
            return Err(RuntimeError::InvalidSpec("a copy needs a new id".into()));
        }
        let (_a, _b) = self.lock_pair(source, &spec.id).await;
        let (source_dir, source_record) = self.load(source)?;
        let mut spec = spec;
        if spec.image.is_none() {
            spec.image = Some(source_record.image.clone());
        }
        let (dir, record) = self.create_locked(spec).await?;
        let copied = self
            .copy_upper_into((&source_dir, &source_record), (&dir, &record))
            .await;
        if let Err(e) = copied {
            if let Err(cleanup) = self.teardown(&dir, &record).await {
                tracing::error!(id = %record.spec.id, error = %cleanup, "cleanup after failed copy");
            }
            return Err(e);
        }
        Ok(self.info(&record, None))
    }

    async fn copy_from_snapshot(
        &self,
        source: &str,
        snapshot: &str,
        spec: ContainerSpec,
    ) -> Result<ContainerInfo> {
        spec.validate()?;
        if spec.id == source {
            return Err(RuntimeError::InvalidSpec("a copy needs a new id".into()));
        }
        let (_a, _b) = self.lock_pair(source, &spec.id).await;
        let (source_dir, source_record) = self.load(source)?;
        let snapshots = SnapshotStore::new(source_dir.snapshots());
        snapshots.get(snapshot).await?;
        let mut spec = spec;
        if spec.image.is_none() {
            spec.image = Some(source_record.image.clone());
        }
        let (dir, record) = self.create_locked(spec).await?;
        let layout = dir.layout();
        let copied = async {
            layout.reset_upper().await?;
            snapshots.extract(snapshot, &layout.upper).await
        }
        .await;
        if let Err(e) = copied {
            if let Err(cleanup) = self.teardown(&dir, &record).await {
                tracing::error!(id = %record.spec.id, error = %cleanup, "cleanup after failed copy");
            }
            return Err(e);
        }
        Ok(self.info(&record, None))
    }

    async fn sync(&self, source: &str, target: &str) -> Result<ContainerInfo> {
        if source == target {
            return Err(RuntimeError::InvalidSpec(
                "cannot sync a container with itself".into(),
            ));
        }
        let (_a, _b) = self.lock_pair(source, target).await;
        let (source_dir, source_record) = self.load(source)?;
        let (dir, record) = self.load(target)?;
        self.copy_upper_into((&source_dir, &source_record), (&dir, &record))
            .await?;
        Ok(self.info(&record, self.current_state(target).await?.as_ref()))
    }

    async fn set_egress_rules(&self, id: &str, rules: Vec<EgressRule>) -> Result<()> {
        let _guard = self.lock(id).await;
        let (dir, mut record) = self.load(id)?;
        let mut spec = record.spec.clone();
        spec.egress_rules = rules;
        spec.validate()?;
        firewall::apply(&record.network.netns, &spec.network, &spec.egress_rules).await?;
        record.spec = spec;
        dir.save(&record)
    }

    async fn set_network_policy(&self, id: &str, policy: NetworkPolicy) -> Result<()> {
        let _guard = self.lock(id).await;
        let (dir, mut record) = self.load(id)?;
        let mut spec = record.spec.clone();
        spec.network = policy;
        spec.validate()?;
        firewall::apply(&record.network.netns, &spec.network, &spec.egress_rules).await?;
        record.spec = spec;
        dir.save(&record)
    }

    async fn create_snapshot(&self, id: &str, name: Option<String>) -> Result<SnapshotInfo> {
        let _guard = self.lock(id).await;
        let (dir, _) = self.load(id)?;
        let name = name.unwrap_or_else(snapshot::default_name);
        let store = SnapshotStore::new(dir.snapshots());
        let upper = dir.layout().upper;
        self.with_frozen(id, store.create(&name, &upper)).await
    }

    async fn list_snapshots(&self, id: &str) -> Result<Vec<SnapshotInfo>> {
        let (dir, _) = self.load(id)?;
        SnapshotStore::new(dir.snapshots()).list().await
    }

    async fn restore_snapshot(&self, id: &str, name: &str) -> Result<SnapshotInfo> {
        let _guard = self.lock(id).await;
        let (dir, record) = self.load(id)?;
        let store = SnapshotStore::new(dir.snapshots());
        let info = store.get(name).await?;
        let was_running =
            status_of(self.current_state(id).await?.as_ref()) != ContainerStatus::Stopped;
        if was_running {
            self.stop_locked(&dir, &record, self.inner.config.stop_grace)
                .await?;
        }
        let layout = dir.layout();
        layout.reset_upper().await?;
        store.extract(name, &layout.upper).await?;
        if was_running {
            self.start_locked(&dir, &record).await?;
        }
        Ok(info)
    }

    async fn delete_snapshot(&self, id: &str, name: &str) -> Result<()> {
        let _guard = self.lock(id).await;
        let (dir, _) = self.load(id)?;
        SnapshotStore::new(dir.snapshots()).delete(name).await
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats> {
        let (dir, record) = self.load(id)?;
        let state = self.current_state(id).await?;
        let status = status_of(state.as_ref());
        let counters = if status == ContainerStatus::Stopped {
            cgroup::CgroupCounters::default()
        } else {
            cgroup::counters(&record.cgroups_path)
        };
        let (net, link_state) = crate::stats::veth_counters(&record.network.host_veth);
        Ok(ContainerStats {
            status,
            pid: state
                .filter(|_| status != ContainerStatus::Stopped)
                .map(|s| s.pid),
            cpu_usage_ns: counters.cpu_usage_ns,
            cpu_limit_millicores: record.spec.limits.cpu_millicores,
            memory: MemoryStats {
                usage: counters.memory_usage,
                peak: counters.memory_peak,
                limit: record.spec.limits.memory_bytes.or(counters.memory_limit),
            },
            processes: counters.processes,
            disk_usage: rootfs::disk_usage(&dir.layout().upper).await?,
            network: NetworkStats {
                interface: "eth0".into(),
                host_interface: record.network.host_veth.clone(),
                netns: record.network.netns.clone(),
                address: record.network.address,
                prefix_len: record.network.prefix_len,
                gateway: record.network.gateway,
                state: link_state,
                counters: net,
            },
        })
    }

    async fn export_dir(&self, id: &str, container_path: &str) -> Result<PathBuf> {
        let (dir, _) = self.load(id)?;
        let relative = container_path.trim_start_matches('/');
        let valid = container_path.starts_with('/')
            && !relative.is_empty()
            && relative
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !valid {
            return Err(RuntimeError::InvalidSpec(format!(
                "invalid share path {container_path:?}"
            )));
        }
        let path = dir.root.join("exports").join(relative);
        tokio::fs::create_dir_all(&path).await.at(&path)?;
        Ok(path)
    }

    async fn exec(&self, id: &str, argv: Vec<String>) -> Result<ExecOutput> {
        self.load(id)?;
        if argv.is_empty() {
            return Err(RuntimeError::InvalidSpec("exec needs a command".into()));
        }
        if status_of(self.current_state(id).await?.as_ref()) != ContainerStatus::Running {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        let out = self.inner.runc.exec(id, &argv).await?;
        Ok(ExecOutput {
            exit_code: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
