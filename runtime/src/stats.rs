//! Usage figures of a container, in units the contract's `containers.getStats` uses
//! (bytes, nanoseconds), seen from inside the container (received = into the container).

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::status::ContainerStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub status: ContainerStatus,
    pub pid: Option<i32>,
    /// Total CPU time consumed, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// CPU limit in millicores, if any (to compute `usage_percent`).
    pub cpu_limit_millicores: Option<u64>,
    pub memory: MemoryStats,
    pub processes: u64,
    /// Bytes written by the container over its image (the overlay upper layer).
    pub disk_usage: u64,
    pub network: NetworkStats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub usage: u64,
    pub peak: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Interface name inside the container (`eth0`).
    pub interface: String,
    /// Host end of the veth pair.
    pub host_interface: String,
    /// Name of the network namespace (`/run/netns/<netns>`).
    pub netns: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub state: String,
    pub counters: NetworkCounters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkCounters {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub errors_received: u64,
    pub errors_sent: u64,
    pub packets_dropped_inbound: u64,
    pub packets_dropped_outbound: u64,
}

fn stat(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Counters of the host veth, swapped: what the host end transmits the container receives.
pub fn veth_counters(host_veth: &str) -> (NetworkCounters, String) {
    let base = Path::new("/sys/class/net").join(host_veth);
    let dir = base.join("statistics");
    let counters = NetworkCounters {
        bytes_received: stat(&dir, "tx_bytes"),
        bytes_sent: stat(&dir, "rx_bytes"),
        packets_received: stat(&dir, "tx_packets"),
        packets_sent: stat(&dir, "rx_packets"),
        errors_received: stat(&dir, "tx_errors"),
        errors_sent: stat(&dir, "rx_errors"),
        packets_dropped_inbound: stat(&dir, "tx_dropped"),
        packets_dropped_outbound: stat(&dir, "rx_dropped"),
    };
    let state = std::fs::read_to_string(base.join("operstate"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".into());
    (counters, state)
}
