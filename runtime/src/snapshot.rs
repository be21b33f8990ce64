//! Snapshots: a tar of the overlay upper layer (the container's changes over its image),
//! kept in the container's directory. The runtime pauses the container around `create`
//! and stops it around `restore`; this module only moves bytes.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::command;
use crate::error::{IoContext, Result, RuntimeError};
use crate::spec::validate_id;

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Size of the archive in bytes.
    pub size: u64,
}

/// The snapshot directory of one container.
pub struct SnapshotStore {
    dir: PathBuf,
}

/// Keeps xattrs (overlay opaque markers) and whiteout device nodes intact.
const TAR_FLAGS: &[&str] = &["--xattrs", "--xattrs-include=*", "--numeric-owner"];

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A sortable default name.
pub fn default_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("snap-{nanos}")
}

impl SnapshotStore {
    pub fn new(dir: PathBuf) -> Self {
        SnapshotStore { dir }
    }

    fn archive(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.tar"))
    }

    fn meta(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Archives `upper` under `name`; fails if the name is taken.
    pub async fn create(&self, name: &str, upper: &Path) -> Result<SnapshotInfo> {
        validate_id(name).map_err(|_| {
            RuntimeError::InvalidSpec(format!(
                "snapshot name {name:?} must be 1-64 of [A-Za-z0-9_-]"
            ))
        })?;
        tokio::fs::create_dir_all(&self.dir).await.at(&self.dir)?;
        if self.meta(name).exists() {
            return Err(RuntimeError::InvalidSpec(format!(
                "snapshot {name} already exists"
            )));
        }
        let archive = self.archive(name);
        let partial = archive.with_extension("partial");
        let mut args: Vec<String> = TAR_FLAGS.iter().map(|s| s.to_string()).collect();
        args.extend([
            "-C".into(),
            upper.to_string_lossy().into_owned(),
            "-cpf".into(),
            partial.to_string_lossy().into_owned(),
            ".".into(),
        ]);
        command::run("tar", &args).await?;
        tokio::fs::rename(&partial, &archive).await.at(&archive)?;
        let size = tokio::fs::metadata(&archive).await.at(&archive)?.len();
        let info = SnapshotInfo {
            name: name.to_string(),
            created_at: now_secs(),
            size,
        };
        let json = serde_json::to_vec_pretty(&info).map_err(|e| RuntimeError::State {
            path: self.meta(name),
            message: e.to_string(),
        })?;
        tokio::fs::write(self.meta(name), json)
            .await
            .at(self.meta(name))?;
        Ok(info)
    }

    /// Snapshots, oldest first.
    pub async fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at(&self.dir),
        };
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await.at(&self.dir)? {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let raw = tokio::fs::read(&path).await.at(&path)?;
            let info: SnapshotInfo =
                serde_json::from_slice(&raw).map_err(|e| RuntimeError::State {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            out.push(info);
        }
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    pub async fn get(&self, name: &str) -> Result<SnapshotInfo> {
        validate_id(name).map_err(|_| RuntimeError::SnapshotNotFound(name.to_string()))?;
        self.list()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| RuntimeError::SnapshotNotFound(name.to_string()))
    }

    /// Unpacks the snapshot into an (empty) upper directory.
    pub async fn extract(&self, name: &str, upper: &Path) -> Result<()> {
        self.get(name).await?;
        let mut args: Vec<String> = TAR_FLAGS.iter().map(|s| s.to_string()).collect();
        args.extend([
            "-C".into(),
            upper.to_string_lossy().into_owned(),
            "-xpf".into(),
            self.archive(name).to_string_lossy().into_owned(),
        ]);
        command::run("tar", &args).await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        self.get(name).await?;
        for path in [self.meta(name), self.archive(name)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(path),
            }
        }
        Ok(())
    }
}
