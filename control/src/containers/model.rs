//! The container record, its status log, and where they are stored. The
//! record keeps the contract's field names so views are mostly the record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Index, Store, StoreResult, Table, Tx};

pub const CONTAINERS: Table<Container> = Table::new("containers");
/// project id -> container ids.
pub const CONTAINERS_BY_PROJECT: Index = Index::new("containers_by_project");
pub const STATUS_LOGS: Table<StatusLog> = Table::new("container_status_logs");
/// container id -> status log ids (ids sort by time).
pub const STATUS_LOGS_BY_CONTAINER: Index = Index::new("container_status_logs_by_container");

/// The contract's container status values.
pub mod status {
    pub const CREATING: &str = "creating";
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const STOPPED: &str = "stopped";
    pub const FAILED: &str = "failed";
    pub const DELETING: &str = "deleting";
    pub const COPYING: &str = "copying";
}

/// A firewall rule in the contract's field names; ingress rules carry
/// `source`, egress rules `destination`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct FirewallRule {
    pub action: String,
    pub protocol: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<String>,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, utoipa::ToSchema)]
pub struct Firewall {
    pub ingress: Vec<FirewallRule>,
    pub egress: Vec<FirewallRule>,
}

/// `containers.updateNetworkConfig` as stored; the proxy credentials stay in
/// `proxy` but are never shown.
#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct NetworkSettings {
    #[serde(rename = "type")]
    pub kind: String,
    pub proxy: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub comment: Option<String>,
    pub dns_servers: Vec<String>,
    /// Whether the policy is applied (`startNetwork`) or only stored.
    pub running: bool,
    pub configured_at: String,
    pub last_status_check: String,
}

/// What the control plane keeps about a snapshot beside the runtime's archive.
#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct SnapshotMeta {
    pub name: String,
    pub alias: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub size: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct Container {
    pub id: String,
    /// The project owner, who pays for and ultimately controls the container.
    pub user_id: String,
    pub project_id: String,
    pub server_id: String,
    pub name: String,
    pub color: String,
    pub container_image: String,
    pub ai: bool,
    pub hoody_kit: bool,
    pub dev_kit: bool,
    pub kvm: bool,
    pub autostart: bool,
    pub ramdisk_scope: String,
    pub ramdisk: bool,
    pub status: String,
    pub environment_vars: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub volumes: serde_json::Map<String, Value>,
    pub ssh_public_key: Option<String>,
    pub comment: Option<String>,
    pub source_container_id: Option<String>,
    pub realm_ids: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When the status last changed (for status-log durations).
    #[serde(default)]
    pub status_changed_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub network: Option<NetworkSettings>,
    #[serde(default)]
    pub snapshots: Vec<SnapshotMeta>,
    #[serde(default)]
    pub last_used_snapshot: Option<String>,
}

/// One status transition.
#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct StatusLog {
    pub id: String,
    pub container_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub transition_time: String,
    pub duration_ms: Option<u64>,
    pub triggered_by: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub created_at: String,
}

/// The containers of a project.
pub fn in_project(store: &Store, project_id: &str) -> StoreResult<Vec<Container>> {
    store.owned(&CONTAINERS_BY_PROJECT, project_id, &CONTAINERS)
}

/// Writes a new container and its index entry.
pub fn insert(tx: &Tx<'_>, c: &Container) -> StoreResult<()> {
    tx.put(&CONTAINERS, &c.id, c)?;
    tx.add_multi(&CONTAINERS_BY_PROJECT, &c.project_id, &c.id)
}

pub const SHARES: Table<StorageShare> = Table::new("storage_shares");
/// source container id -> share ids.
pub const SHARES_BY_SOURCE: Index = Index::new("storage_shares_by_source");
/// target container id or target project id -> share ids.
pub const SHARES_BY_TARGET: Index = Index::new("storage_shares_by_target");

/// A storage share: a directory of the source container bind-mounted into
/// a target container, or into every container of a target project. The
/// fields up to `updated_at` are the contract's; the rest are internal.
#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct StorageShare {
    pub id: String,
    pub source_container_id: String,
    pub source_path: String,
    pub target_container_id: Option<String>,
    pub target_project_id: Option<String>,
    /// `container` or `project`.
    pub target_type: String,
    /// `readonly` or `readwrite`: how targets see it (the source always writes).
    pub mode: String,
    pub alias: Option<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// `active`, or `failed` when the runtime refused the mounts.
    pub status: String,
    pub status_message: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Whether the owner was told the share expires soon.
    pub expiry_notified: bool,
    pub created_by: String,
    pub realm_ids: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Owner of the source container, who receives the share's events.
    pub user_id: String,
    /// The host directory holding the shared files (from `Runtime::export_dir`).
    pub export_path: String,
    /// Targets' answers to the share (`storageShares.toggleIncomingMount`).
    #[serde(default)]
    pub overrides: Vec<MountOverride>,
    /// Whether `storage.share.expired` was recorded.
    #[serde(default)]
    pub expired_recorded: bool,
}

/// A target container's choice to mount or refuse an incoming share.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct MountOverride {
    pub id: String,
    pub share_id: String,
    pub container_id: String,
    pub mount: bool,
    pub created_at: String,
    pub updated_at: String,
}
