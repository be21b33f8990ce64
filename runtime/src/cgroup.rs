//! cgroup paths and counters. runc creates and removes the cgroups; this module names
//! them (absolute paths under a configurable parent, so every container of a runtime is
//! findable and none lands in hoody-api's own cgroup), reads their counters, and removes
//! leftovers runc may leave after a crash. Works on cgroup v1 (hybrid) and v2.

use std::path::{Path, PathBuf};

use crate::spec::ResourceLimits;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CPU_PERIOD_US: u64 = 100_000;

/// The container's cgroup path as given to runc (`/hoody/<id>`).
pub fn container_path(parent: &str, id: &str) -> String {
    format!("/{}/{}", parent.trim_matches('/'), id)
}

fn is_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// Every directory that belongs to the cgroup path, one per v1 hierarchy (or the one v2 dir).
pub fn directories(path: &str) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    if is_unified() {
        return vec![Path::new(CGROUP_ROOT).join(relative)];
    }
    let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path().join(relative))
        .collect()
}

/// cgroup directories of this path that still exist (a leak check after delete).
pub fn existing_directories(path: &str) -> Vec<PathBuf> {
    directories(path)
        .into_iter()
        .filter(|d| d.exists())
        .collect()
}

/// Removes leftover empty cgroup directories; best effort, since a busy cgroup cannot go.
pub fn remove(path: &str) {
    for dir in existing_directories(path) {
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
        }
    }
}

/// OCI `linux.resources` for the limits.
pub fn oci_resources(limits: &ResourceLimits) -> serde_json::Value {
    let mut resources = serde_json::json!({
        "devices": [{"allow": false, "access": "rwm"}]
    });
    if let Some(millicores) = limits.cpu_millicores {
        resources["cpu"] = serde_json::json!({
            "quota": (millicores * CPU_PERIOD_US / 1000) as i64,
            "period": CPU_PERIOD_US,
        });
    }
    if let Some(bytes) = limits.memory_bytes {
        resources["memory"] = serde_json::json!({ "limit": bytes as i64 });
    }
    if let Some(pids) = limits.pids {
        resources["pids"] = serde_json::json!({ "limit": pids as i64 });
    }
    resources
}

/// Raw counters of a container's cgroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupCounters {
    pub cpu_usage_ns: u64,
    pub memory_usage: u64,
    pub memory_peak: u64,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub processes: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn controller(name: &str, path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT)
        .join(name)
        .join(path.trim_start_matches('/'))
}

/// Reads the counters; missing files read as zero (a stopped container has no cgroup).
pub fn counters(path: &str) -> CgroupCounters {
    if is_unified() {
        return counters_v2(path);
    }
    let limit = read_u64(&controller("memory", path).join("memory.limit_in_bytes"))
        .filter(|l| *l < i64::MAX as u64 / 2);
    CgroupCounters {
        cpu_usage_ns: read_u64(&controller("cpuacct", path).join("cpuacct.usage")).unwrap_or(0),
        memory_usage: read_u64(&controller("memory", path).join("memory.usage_in_bytes"))
            .unwrap_or(0),
        memory_peak: read_u64(&controller("memory", path).join("memory.max_usage_in_bytes"))
            .unwrap_or(0),
        memory_limit: limit,
        processes: read_u64(&controller("pids", path).join("pids.current")).unwrap_or(0),
    }
}

fn counters_v2(path: &str) -> CgroupCounters {
    let dir = Path::new(CGROUP_ROOT).join(path.trim_start_matches('/'));
    let usage_us = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    CgroupCounters {
        cpu_usage_ns: usage_us * 1000,
        memory_usage: read_u64(&dir.join("memory.current")).unwrap_or(0),
        memory_peak: read_u64(&dir.join("memory.peak")).unwrap_or(0),
        memory_limit: read_u64(&dir.join("memory.max")),
        processes: read_u64(&dir.join("pids.current")).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_oci_resources() {
        let r = oci_resources(&ResourceLimits {
            cpu_millicores: Some(500),
            memory_bytes: Some(64 << 20),
            pids: Some(100),
        });
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["pids"]["limit"], 100);
    }

    #[test]
    fn paths_are_absolute_under_the_parent() {
        assert_eq!(container_path("hoody", "c1"), "/hoody/c1");
        assert_eq!(container_path("/a/b/", "c1"), "/a/b/c1");
    }
}
