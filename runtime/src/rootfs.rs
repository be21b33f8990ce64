//! Per-container root filesystem: an overlay with the image as the read-only lower layer
//! and the container's own `upper`/`work` directories. Everything a container writes
//! lands in `upper`, which is what snapshots tar and copies duplicate.
//!
//! The overlay is mounted while the container runs and unmounted when it stops, so a
//! stopped container holds no mount.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::command;
use crate::error::{IoContext, Result, RuntimeError};
use crate::image::remove_dir_if_exists;

/// The directories of one container's root filesystem.
#[derive(Debug, Clone)]
pub struct RootfsLayout {
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Mount point of the overlay; the OCI bundle's `root.path`.
    pub merged: PathBuf,
}

impl RootfsLayout {
    pub fn in_dir(container_dir: &Path) -> Self {
        RootfsLayout {
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            merged: container_dir.join("rootfs"),
        }
    }

    pub async fn create_dirs(&self) -> Result<()> {
        for dir in [&self.upper, &self.work, &self.merged] {
            tokio::fs::create_dir_all(dir).await.at(dir)?;
        }
        Ok(())
    }

    /// Mounts the overlay (idempotent: an existing mount is kept).
    pub async fn mount(&self, lower: &Path) -> Result<()> {
        if is_mounted(&self.merged)? {
            return Ok(());
        }
        self.create_dirs().await?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            self.upper.display(),
            self.work.display()
        );
        let merged = self.merged.clone();
        blocking(move || {
            nix::mount::mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|e| RuntimeError::Host(format!("mount overlay on {}: {e}", merged.display())))
        })
        .await
    }

    /// Unmounts the overlay (idempotent), lazily if something still holds it.
    pub async fn unmount(&self) -> Result<()> {
        let merged = self.merged.clone();
        blocking(move || unmount_all(&merged)).await
    }

    /// Empties overlayfs's scratch directory, which must not carry state between layers.
    pub async fn reset_work(&self) -> Result<()> {
        remove_dir_if_exists(&self.work).await?;
        tokio::fs::create_dir_all(&self.work).await.at(&self.work)
    }

    /// Empties the upper and work layers, e.g. before restoring a snapshot.
    pub async fn reset_upper(&self) -> Result<()> {
        remove_dir_if_exists(&self.upper).await?;
        remove_dir_if_exists(&self.work).await?;
        self.create_dirs().await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Host(format!("blocking task failed: {e}")))?
}

fn unmount_all(target: &Path) -> Result<()> {
    while is_mounted(target)? {
        if let Err(e) = nix::mount::umount2(target, MntFlags::empty()) {
            nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|e2| {
                RuntimeError::Host(format!("umount {}: {e}, then {e2}", target.display()))
            })?;
        }
    }
    Ok(())
}

/// Mount points at or below `dir` according to /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").at("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect())
}

fn unescape_mount_path(raw: &str) -> PathBuf {
    PathBuf::from(
        raw.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n"),
    )
}

fn is_mounted(path: &Path) -> Result<bool> {
    Ok(mounts_under(path)?.iter().any(|p| p == path))
}

/// Copies a layer with ownership, modes, xattrs and overlay whiteouts intact.
pub async fn copy_layer(source: &Path, target: &Path) -> Result<()> {
    remove_dir_if_exists(target).await?;
    tokio::fs::create_dir_all(target).await.at(target)?;
    let from = format!("{}/.", source.display());
    let to = target.to_string_lossy().into_owned();
    command::run("cp", &["-a", "--reflink=auto", from.as_str(), to.as_str()]).await?;
    Ok(())
}

/// Bytes used by the files of a directory tree (apparent sizes, hard links once).
pub async fn disk_usage(dir: &Path) -> Result<u64> {
    let dir = dir.to_path_buf();
    blocking(move || Ok(walk_size(&dir, &mut std::collections::HashSet::new()))).await
}

fn walk_size(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += walk_size(&entry.path(), seen);
        } else if seen.insert((meta.dev(), meta.ino())) {
            total += meta.len();
        }
    }
    total
}
