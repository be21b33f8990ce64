//! The persisted record of a container: its spec plus the host resources allocated to
//! it. It is the source of truth for adoption after a restart, so every resource a
//! container holds (address, veth, netns, cgroup) is named here before it is created.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::network::{write_atomic, Attachment};
use crate::rootfs::RootfsLayout;
use crate::spec::ContainerSpec;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub spec: ContainerSpec,
    /// Canonical image name.
    pub image: String,
    pub network: Attachment,
    pub cgroups_path: String,
    pub created_at: u64,
}

/// Files of one container under `<state>/containers/<id>/`.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    pub root: PathBuf,
}

impl ContainerDir {
    pub fn new(containers: &Path, id: &str) -> Self {
        ContainerDir {
            root: containers.join(id),
        }
    }

    pub fn record(&self) -> PathBuf {
        self.root.join("container.json")
    }

    /// The OCI bundle is the container directory itself (`config.json` + `rootfs`).
    pub fn bundle(&self) -> &Path {
        &self.root
    }

    pub fn pid_file(&self) -> PathBuf {
        self.root.join("init.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.root.join("console.log")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.root.join("resolv.conf")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn layout(&self) -> RootfsLayout {
        RootfsLayout::in_dir(&self.root)
    }

    pub fn load(&self) -> Result<Option<ContainerRecord>> {
        let path = self.record();
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RuntimeError::Io { path, source: e });
            }
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| RuntimeError::State {
                path,
                message: e.to_string(),
            })
    }

    pub fn save(&self, record: &ContainerRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| RuntimeError::State {
            path: self.record(),
            message: e.to_string(),
        })?;
        write_atomic(&self.record(), &json)
    }
}

/// A stable short key for host object names (veth ≤ 15 chars), unique per state dir and
/// id so parallel runtimes on one host never collide. FNV-1a: stable across builds.
pub fn short_key(state_dir: &Path, id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in state_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(id.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}
