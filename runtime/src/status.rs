//! What the control plane sees of a container.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;

/// Runtime status; the control plane adds its own transitional states (creating, copying...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Stopped,
    Running,
    Paused,
}

/// A container as the runtime knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    /// Canonical image name (`busybox`, `debian/12`).
    pub image: String,
    pub status: ContainerStatus,
    /// Host pid of the container's init while it runs.
    pub pid: Option<i32>,
    pub address: Ipv4Addr,
    pub spec: ContainerSpec,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}
