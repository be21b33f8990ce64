//! The local image store: root filesystems that container overlays use as their lower
//! layer. Images are built on this machine (busybox from `busybox-static`, Debian with
//! `debootstrap`), never pulled from a registry. A built image is never modified again:
//! running containers share it read-only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::command;
use crate::error::{IoContext, Result, RuntimeError};

/// Canonical image names the store can build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageName {
    Busybox,
    Debian(u8),
}

impl ImageName {
    /// Canonical form, as the contract shows it (`debian/12`).
    pub fn canonical(&self) -> String {
        match self {
            ImageName::Busybox => "busybox".into(),
            ImageName::Debian(v) => format!("debian/{v}"),
        }
    }

    fn dir_name(&self) -> String {
        self.canonical().replace('/', "-")
    }

    fn debian_suite(version: u8) -> Option<&'static str> {
        match version {
            11 => Some("bullseye"),
            12 => Some("bookworm"),
            13 => Some("trixie"),
            _ => None,
        }
    }

    /// Resolves the shorthand forms of the contract's `container_image`: a bare
    /// distribution name, `debian-12`, `debian:12`, `debian 12`, `debian/12`
    /// (optionally prefixed `images:`), case-insensitive.
    pub fn parse(reference: &str) -> Result<ImageName> {
        let not_found = || RuntimeError::ImageNotFound(reference.to_string());
        let lowered = reference.trim().to_ascii_lowercase();
        let text = lowered.strip_prefix("images:").unwrap_or(&lowered);
        let (distro, version) = match text.find(['-', ':', ' ', '/']) {
            Some(at) => (&text[..at], Some(text[at + 1..].trim())),
            None => (text, None),
        };
        match (distro, version) {
            ("busybox", None | Some("latest")) => Ok(ImageName::Busybox),
            ("debian", None | Some("latest")) => Ok(ImageName::Debian(12)),
            ("debian", Some(v)) => {
                let version = match v {
                    "bullseye" => 11,
                    "bookworm" => 12,
                    "trixie" => 13,
                    other => other.parse::<u8>().map_err(|_| not_found())?,
                };
                Self::debian_suite(version).ok_or_else(not_found)?;
                Ok(ImageName::Debian(version))
            }
            _ => Err(not_found()),
        }
    }
}

/// Metadata stored next to an image's root filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub name: String,
    /// Process started as the container's init.
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
}

/// A ready image.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: ImageName,
    pub rootfs: PathBuf,
    pub config: ImageConfig,
}

/// Builds images lazily, once, under `root`.
pub struct ImageStore {
    root: PathBuf,
    debian_mirror: String,
    build_locks: std::sync::Mutex<HashMap<ImageName, Arc<Mutex<()>>>>,
}

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Init of the busybox image: pid 1 ignores signals it has no handler for, so the
/// shell traps TERM to make `stop` graceful instead of waiting for the KILL.
const BUSYBOX_INIT: &str = r#"#!/bin/sh
trap 'kill -TERM $child 2>/dev/null; exit 0' TERM INT
httpd -f -p 80 -h /www &
child=$!
wait $child
"#;

const BUSYBOX_ENV_CGI: &str = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nenv\n";

const DEBIAN_INIT: &str = r#"#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"#;

impl ImageStore {
    pub fn new(root: impl Into<PathBuf>, debian_mirror: impl Into<String>) -> Self {
        ImageStore {
            root: root.into(),
            debian_mirror: debian_mirror.into(),
            build_locks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn image_dir(&self, name: &ImageName) -> PathBuf {
        self.root.join(name.dir_name())
    }

    /// Returns the image, building it first if needed (busybox: instant; Debian: minutes).
    pub async fn get(&self, reference: &str) -> Result<Image> {
        let name = ImageName::parse(reference)?;
        let dir = self.image_dir(&name);
        if let Some(image) = self.load(&name, &dir).await? {
            return Ok(image);
        }
        let lock = self.build_lock(&name);
        let _guard = lock.lock().await;
        if let Some(image) = self.load(&name, &dir).await? {
            return Ok(image);
        }
        self.build(&name, &dir).await?;
        self.load(&name, &dir)
            .await?
            .ok_or_else(|| RuntimeError::ImageNotFound(reference.to_string()))
    }

    fn build_lock(&self, name: &ImageName) -> Arc<Mutex<()>> {
        let mut locks = self
            .build_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(name.clone()).or_default().clone()
    }

    async fn load(&self, name: &ImageName, dir: &Path) -> Result<Option<Image>> {
        let config_path = dir.join("image.json");
        let raw = match tokio::fs::read(&config_path).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(config_path),
        };
        let config: ImageConfig =
            serde_json::from_slice(&raw).map_err(|e| RuntimeError::State {
                path: config_path,
                message: e.to_string(),
            })?;
        Ok(Some(Image {
            name: name.clone(),
            rootfs: dir.join("rootfs"),
            config,
        }))
    }

    /// Builds into a temporary directory and renames it into place, so a crash mid-build
    /// never leaves a half image that looks complete.
    async fn build(&self, name: &ImageName, dir: &Path) -> Result<()> {
        let staging = self.root.join(format!(".build-{}", name.dir_name()));
        remove_dir_if_exists(&staging).await?;
        tokio::fs::create_dir_all(staging.join("rootfs"))
            .await
            .at(&staging)?;
        let config = match name {
            ImageName::Busybox => build_busybox(&staging.join("rootfs")).await?,
            ImageName::Debian(version) => {
                build_debian(&staging.join("rootfs"), *version, &self.debian_mirror).await?
            }
        };
        let json = serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::State {
            path: staging.join("image.json"),
            message: e.to_string(),
        })?;
        tokio::fs::write(staging.join("image.json"), json)
            .await
            .at(staging.join("image.json"))?;
        remove_dir_if_exists(dir).await?;
        tokio::fs::rename(&staging, dir).await.at(dir)?;
        tracing::info!(image = %name.canonical(), "image built");
        Ok(())
    }
}

pub(crate) async fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(dir),
    }
}

/// Where Debian's `busybox-static` installs the binary.
pub const BUSYBOX_STATIC: &str = "/bin/busybox";

async fn write_file(path: PathBuf, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::write(&path, contents).await.at(&path)?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .await
        .at(&path)
}

async fn build_busybox(rootfs: &Path) -> Result<ImageConfig> {
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "tmp",
        "proc",
        "sys",
        "dev",
        "var/www",
        "www/cgi-bin",
        "home",
    ] {
        tokio::fs::create_dir_all(rootfs.join(dir))
            .await
            .at(rootfs.join(dir))?;
    }
    let busybox = rootfs.join("bin/busybox");
    tokio::fs::copy(BUSYBOX_STATIC, &busybox)
        .await
        .at(BUSYBOX_STATIC)?;
    link_applets(rootfs).await?;
    write_file(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )
    .await?;
    write_file(
        rootfs.join("etc/group"),
        "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
        0o644,
    )
    .await?;
    write_file(rootfs.join("etc/hosts"), "127.0.0.1 localhost\n", 0o644).await?;
    write_file(
        rootfs.join("etc/resolv.conf"),
        "nameserver 1.1.1.1\n",
        0o644,
    )
    .await?;
    write_file(
        rootfs.join("www/index.html"),
        "<!doctype html><title>hoody</title><p>busybox container</p>\n",
        0o644,
    )
    .await?;
    write_file(rootfs.join("www/cgi-bin/env"), BUSYBOX_ENV_CGI, 0o755).await?;
    write_file(rootfs.join("init.sh"), BUSYBOX_INIT, 0o755).await?;
    set_mode(&rootfs.join("tmp"), 0o1777).await?;
    Ok(ImageConfig {
        name: ImageName::Busybox.canonical(),
        entrypoint: vec!["/init.sh".into()],
        env: vec![PATH_ENV.into()],
    })
}

async fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .at(path)
}

/// One symlink per applet at the path busybox reports (`/usr/bin/wget`, ...).
async fn link_applets(rootfs: &Path) -> Result<()> {
    let list = command::run(BUSYBOX_STATIC, &["--list-full"]).await?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = rootfs.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            tokio::fs::create_dir_all(parent).await.at(parent)?;
        }
        tokio::fs::symlink("/bin/busybox", &link).await.at(&link)?;
    }
    Ok(())
}

async fn build_debian(rootfs: &Path, version: u8, mirror: &str) -> Result<ImageConfig> {
    let suite = ImageName::debian_suite(version)
        .ok_or_else(|| RuntimeError::ImageNotFound(format!("debian/{version}")))?;
    let target = rootfs.to_string_lossy().into_owned();
    command::run(
        "debootstrap",
        &["--variant=minbase", suite, target.as_str(), mirror],
    )
    .await?;
    write_file(rootfs.join("init.sh"), DEBIAN_INIT, 0o755).await?;
    Ok(ImageConfig {
        name: ImageName::Debian(version).canonical(),
        entrypoint: vec!["/init.sh".into()],
        env: vec![PATH_ENV.into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_contract_shorthands() {
        for r in [
            "debian",
            "debian-12",
            "debian:12",
            "debian 12",
            "debian/12",
            "Debian/12",
            "images:debian/12",
            "debian:bookworm",
        ] {
            assert_eq!(ImageName::parse(r).unwrap(), ImageName::Debian(12), "{r}");
        }
        assert_eq!(
            ImageName::parse("debian-13").unwrap(),
            ImageName::Debian(13)
        );
        assert_eq!(ImageName::parse("busybox").unwrap(), ImageName::Busybox);
        assert_eq!(
            ImageName::parse("busybox:latest").unwrap(),
            ImageName::Busybox
        );
    }

    #[test]
    fn unknown_images_are_typed_errors() {
        for r in ["ubuntu", "debian-99", "debian:sid", "", "busybox:1.0"] {
            assert!(
                matches!(ImageName::parse(r), Err(RuntimeError::ImageNotFound(_))),
                "{r}"
            );
        }
    }
}
