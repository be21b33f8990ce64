//! The container runtime: runs OCI containers with Debian's `runc`.
//!
//! The control plane talks to the [`Runtime`] trait; [`RuncRuntime`] is the real driver.
//! Each container gets an overlay root filesystem over a locally built image, its own
//! network namespace on a host bridge, cgroup limits, an nftables egress firewall, and
//! snapshots of its writable layer. See `docs/runtime.md` for the on-disk layout.
//!
//! This crate never depends on the control plane or the data plane: it knows containers,
//! not users, projects or billing.

mod cgroup;
mod command;
mod driver;
mod error;
mod firewall;
mod host;
mod image;
mod network;
mod oci;
mod record;
mod rootfs;
mod runc;
mod snapshot;
mod spec;
mod stats;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use driver::{RuncRuntime, RuntimeConfig};
pub use error::{Result, RuntimeError};
pub use host::{check_host, kvm_available, require_kvm, INSTALL_HINT};
pub use image::{Image, ImageConfig, ImageName, ImageStore};
pub use network::NetworkConfig;
pub use snapshot::SnapshotInfo;
pub use spec::{
    BindMount, ContainerSpec, EgressRule, NetworkPolicy, ProxyKind, ResourceLimits, RuleAction,
    RuleProtocol,
};
pub use stats::{ContainerStats, MemoryStats, NetworkCounters, NetworkStats};
pub use status::{ContainerInfo, ContainerStatus};

/// Helpers for tests and diagnostics: where a container's host resources live.
pub mod inspect {
    pub use crate::cgroup::{container_path as cgroup_path, existing_directories as cgroup_dirs};
    pub use crate::network::interface_exists;
    pub use crate::rootfs::mounts_under;
}

/// Changes to a container's spec; `None` keeps the current value. Applied at next start.
#[derive(Debug, Clone, Default)]
pub struct SpecUpdate {
    pub env: Option<BTreeMap<String, String>>,
    pub limits: Option<ResourceLimits>,
    pub mounts: Option<Vec<BindMount>>,
    pub hostname: Option<Option<String>>,
    pub command: Option<Option<Vec<String>>>,
    pub dns_servers: Option<Vec<String>>,
}

/// Result of a command run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What the control plane can do with containers on one server. Every method is safe to
/// call concurrently; calls on the same container are serialized.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Prepares a stopped container: image, root filesystem, address, netns, firewall.
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerInfo>;
    /// Starts a stopped container with its current spec. `AlreadyRunning` if it runs.
    async fn start(&self, id: &str) -> Result<ContainerInfo>;
    /// SIGTERM, then SIGKILL after `grace` (default from the config). `NotRunning` if stopped.
    async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<ContainerInfo>;
    /// SIGKILL at once.
    async fn force_stop(&self, id: &str) -> Result<ContainerInfo>;
    /// Stop (if running) then start.
    async fn restart(&self, id: &str) -> Result<ContainerInfo>;
    /// Freezes every process (cgroup freezer); idempotent.
    async fn pause(&self, id: &str) -> Result<ContainerInfo>;
    /// Thaws a paused container; idempotent.
    async fn resume(&self, id: &str) -> Result<ContainerInfo>;
    /// Stops and removes everything: runc state, mounts, cgroups, veth, netns, address, files.
    async fn delete(&self, id: &str) -> Result<()>;
    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    async fn list(&self) -> Result<Vec<ContainerInfo>>;
    /// Changes env, limits, mounts...; effective at the next start.
    async fn update(&self, id: &str, update: SpecUpdate) -> Result<ContainerInfo>;
    /// Creates `spec.id` (stopped) with a copy of `source`'s root filesystem changes.
    async fn copy(&self, source: &str, spec: ContainerSpec) -> Result<ContainerInfo>;
    /// Creates `spec.id` (stopped) with the root filesystem changes stored in `source`'s
    /// snapshot `snapshot` (`SnapshotNotFound` if it has none by that name).
    async fn copy_from_snapshot(
        &self,
        source: &str,
        snapshot: &str,
        spec: ContainerSpec,
    ) -> Result<ContainerInfo>;
    /// Copies `source`'s root filesystem changes over `target`'s again.
    async fn sync(&self, source: &str, target: &str) -> Result<ContainerInfo>;
    /// Replaces the egress rules; enforced immediately.
    async fn set_egress_rules(&self, id: &str, rules: Vec<EgressRule>) -> Result<()>;
    /// `Block` is enforced immediately; proxy variables apply at the next start.
    async fn set_network_policy(&self, id: &str, policy: NetworkPolicy) -> Result<()>;
    async fn create_snapshot(&self, id: &str, name: Option<String>) -> Result<SnapshotInfo>;
    async fn list_snapshots(&self, id: &str) -> Result<Vec<SnapshotInfo>>;
    /// Replaces the root filesystem changes with the snapshot's, restarting if running.
    async fn restore_snapshot(&self, id: &str, name: &str) -> Result<SnapshotInfo>;
    async fn delete_snapshot(&self, id: &str, name: &str) -> Result<()>;
    async fn stats(&self, id: &str) -> Result<ContainerStats>;
    /// Runs a command in a running container.
    async fn exec(&self, id: &str, argv: Vec<String>) -> Result<ExecOutput>;
    /// A host directory owned by container `id` for sharing `container_path` with other
    /// containers (storage shares): the control plane bind-mounts it into the owner at
    /// `container_path` and into each target. It lives in the container's directory, so
    /// it goes away with the container. Bind mounts rather than the overlay upper layer,
    /// because overlayfs forbids changing its layers behind its back.
    async fn export_dir(&self, id: &str, container_path: &str) -> Result<PathBuf>;
}
